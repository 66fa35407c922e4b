#!/usr/bin/env bash
# One device-tool call on a lent GPU machine (no network): the package from src/, the
# missing wheels in .whl/ and a copy of ../shared/data in .gpudata/ carried beside it.
# Runs, in this order and partly at once:
#   - the annotation loop on CUDA, DSB and ISBI, seeds 0-3 (8 processes, 1 CPU thread each);
#   - the test files that open no napari viewer (pytest-xdist, 6 workers; they hide CUDA
#     from themselves since 433fc87, so this checks that they pass on a GPU machine);
#   - benchmarks/check_resume_devices.py (an out-of-core run resumed on CUDA and on the CPU).
# Everything lands in $OUT: env.txt, loop.jsonl, loop.log, pytest.log, resume_devices.json.
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests NAPARI_UNET_DATA=$PWD/.gpudata PYTHONUNBUFFERED=1
LABEL=${LABEL:-gpu-h100-s43}
{ nvidia-smi; python3 -c "import sys, torch, numpy, zarr, dask; print(sys.version, torch.__version__, numpy.__version__, zarr.__version__, dask.__version__, torch.cuda.get_device_name())"; nproc; } > "$OUT/env.txt" 2>&1
mkdir -p /tmp/loop
for task in dsb isbi; do
    for seed in 0 1 2 3; do
        timeout 480 python3 benchmarks/bench_annotation_loop.py --task $task --seeds $seed \
            --threads 1 --device cuda --label "$LABEL" --out /tmp/loop/$task-$seed.jsonl \
            > /tmp/loop/$task-$seed.log 2>&1 &
    done
done
# no napari, Qt or bioimageio.core on the GPU image: the files and tests that need them are left out
gui_free=$(grep -L "make_napari_viewer\|import napari\|qtpy\|qtbot\|_widgets\|gui_stalls\|bioimageio" tests/test_*.py)
timeout 300 python3 -m pytest -q -n 6 -p no:cacheprovider -m "not gui" -k "not bioimage" $gui_free \
    > "$OUT/pytest.log" 2>&1
echo "pytest rc=$?" >> "$OUT/pytest.log"
timeout 200 python3 benchmarks/check_resume_devices.py --out "$OUT/resume_devices.json" \
    > /tmp/resume.log 2>&1 || tail -20 /tmp/resume.log
wait
cat /tmp/loop/*.jsonl > "$OUT/loop.jsonl"
tail -n 5 /tmp/loop/*.log > "$OUT/loop.log"
cat "$OUT/env.txt" | tail -3; tail -5 "$OUT/pytest.log"; cat "$OUT/resume_devices.json"
wc -l "$OUT/loop.jsonl"
