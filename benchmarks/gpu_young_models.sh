#!/usr/bin/env bash
# One device-tool call on a lent GPU machine (set up as in gpu_check.sh: .whl/ and .gpudata/
# carried). The loop's new-model tasks on CUDA, seeds 8-15, distillation 3 against the
# default 10 for the later rounds (rounds 2-3 fine-tune round 1's model), 12 sessions at
# once, 1 CPU thread each; beside them the GPU-free test files (4 workers, on the CPU).
# Lands in $OUT: young_models.jsonl, young_models.log, pytest.log.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests NAPARI_UNET_DATA=$PWD/.gpudata PYTHONUNBUFFERED=1
mkdir -p /tmp/young
session() {  # task new-model-iterations seed weight
    timeout 420 python3 benchmarks/bench_annotation_loop.py --task "$1" --new-model "$2" \
        --seeds "$3" --start first --distillation "$4" --kd-border 30 --context 0.25 \
        --threads 1 --device cuda --label "gpu-h100-s43-$1-new$2-kd$4" \
        --out "/tmp/young/$1-$3-kd$4.jsonl" > "/tmp/young/$1-$3-kd$4.log" 2>&1
}
export -f session
{
    for seed in 8 9 10 11 12 13 14 15; do for weight in 10 3; do echo "dsb 750 $seed $weight"; done; done
    for seed in 8 9 10 11 12 13 14 15; do for weight in 10 3; do echo "isbi 300 $seed $weight"; done; done
} | xargs -P 12 -L 1 bash -c 'session "$@"' _ &
gui_free=$(grep -L "make_napari_viewer\|import napari\|qtpy\|qtbot\|_widgets\|gui_stalls\|bioimageio" tests/test_*.py)
timeout 300 python3 -m pytest -q -n 4 -p no:cacheprovider -m "not gui" -k "not bioimage" $gui_free \
    > "$OUT/pytest.log" 2>&1
echo "pytest rc=$?" >> "$OUT/pytest.log"
tail -3 "$OUT/pytest.log"
wait
cat /tmp/young/*.jsonl > "$OUT/young_models.jsonl"
tail -n 3 /tmp/young/*.log > "$OUT/young_models.log"
wc -l "$OUT/young_models.jsonl"
