"""Benchmark fine-tuning: iterations/s, training megapixels/s, and one annotate-train-predict round.

Sections:

``throughput``
    :func:`napari_unet.finetune` with the default :class:`~napari_unet.TrainConfig`
    (patch ``sampling.default_patch_size(model)``, batch 4) for a fixed number of
    iterations on a 1024 x 1024 synthetic image with simulated scribbles. Only the
    training loop counts (``TrainProgress.elapsed``; the one-off weight map is
    timed separately). Training megapixels/s counts the output pixels of the
    patches (the pixels the loss sees) and, separately, the input pixels.
    Timed twice per repeat, interleaved: with ``finetune``'s channels-last weights on the
    CPU, and with the weights kept in the default (NCHW) layout, as ``finetune`` trained
    before (``training_layout`` replaced in ``training.loop`` for those runs). Also one forward +
    backward + Adam step on a batch in NCHW and in channels-last layout.
``round``
    One full round on a 1024 x 1024 image: simulated annotation (scribbles on
    2 % of the pixels), ``finetune`` with the default 30 s budget, ``predict``
    with the default tiles (572, batch 4) and the class mask.

The model is the bundled ``em-membranes`` when installed, else a random U-Net of
the same architecture (see ``bench_inference.py``).

Usage::

    python benchmarks/bench_training.py [--quick] [--repeats N] [--threads T] [--iterations N]
        [--json benchmarks/results/training.json]

Prints a markdown report on stdout (progress on stderr); ``--json PATH`` also writes the
numbers as JSON.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

# isort: off
import napari_unet  # noqa: F401  (first: asks PyTorch for huge pages before torch is imported)
import numpy as np
import torch

# isort: on
from bench_inference import get_model, load_average, log, machine_lines
from raw_results import add_json_option, utc_now, write_json

from napari_unet import TrainConfig, UNet, class_mask, finetune, predict
from napari_unet.config import PredictConfig
from napari_unet.io.synthetic import simulate_scribbles, synthetic_nuclei
from napari_unet.training import loop as loop_module
from napari_unet.training.loop import weighted_loss
from napari_unet.training.sampling import default_patch_size
from napari_unet.training.weights import annotation_from_instances


def training_data(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic image, its dense annotation and simulated scribbles (2 % of the pixels)."""
    n_nuclei = max(4, size * size // 3500)
    image, instances = synthetic_nuclei((size, size), n_nuclei, seed)
    dense = annotation_from_instances(instances)
    scribbles = simulate_scribbles(dense, seed, fraction=0.02)
    return image, dense, scribbles


def run_finetune(
    model: UNet, image: np.ndarray, scribbles: np.ndarray, config: TrainConfig
) -> tuple[float, float, int]:
    """(wall seconds, training-loop seconds, iterations) of one ``finetune`` call."""
    start = time.perf_counter()
    reports = list(finetune(model, [image], [scribbles], config, report_every=10**9))
    wall = time.perf_counter() - start
    return wall, reports[-1].elapsed, reports[-1].iteration


def bench_throughput(
    model: UNet, size: int, iterations: int, repeats: int
) -> tuple[list[str], dict]:
    """Iterations/s and training Mpx/s at the default patch and batch; lines and numbers."""
    image, _, scribbles = training_data(size)
    defaults = TrainConfig()
    patch = defaults.patch_size or default_patch_size(model)
    output = model.output_size(patch)
    batch = defaults.batch_size
    config = TrainConfig(seconds=None, iterations=iterations, device="cpu")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    run_finetune(model, image, scribbles, TrainConfig(seconds=None, iterations=2, device="cpu"))
    load_before = load_average()
    walls, loops, nchw_loops = time_layouts(model, state, image, scribbles, config, repeats)
    model.load_state_dict(state)
    loop = statistics.median(loops)
    nchw_loop = statistics.median(nchw_loops)
    setup = statistics.median(w - x for w, x in zip(walls, loops))
    rate = iterations / loop
    steps, step_ms = step_layouts(model, patch, batch, repeats)
    numbers = {
        "size": size,
        "patch": patch,
        "output": output,
        "batch": batch,
        "iterations": iterations,
        "load_before": load_before,
        "loop_s": loops,
        "nchw_loop_s": nchw_loops,
        "channels_last_vs_nchw": nchw_loop / loop,
        "wall_s": walls,
        "iterations_per_s": rate,
        "output_mpx_per_s": rate * batch * output**2 / 1e6,
        "input_mpx_per_s": rate * batch * patch**2 / 1e6,
        "setup_s": setup,
        "training_step_ms": step_ms,
    }
    return [*throughput_lines(numbers, repeats), *steps, ""], numbers


def time_layouts(
    model: UNet,
    state: dict[str, torch.Tensor],
    image: np.ndarray,
    scribbles: np.ndarray,
    config: TrainConfig,
    repeats: int,
) -> tuple[list[float], list[float], list[float]]:
    """``repeats`` fine-tunes per layout, interleaved, each from the weights ``state``:
    channels-last weights (as ``finetune`` trains on the CPU) and NCHW weights (as before).

    Returns the wall seconds of the channels-last runs, their training-loop seconds and
    the training-loop seconds of the NCHW runs.
    """
    walls, loops, nchw_loops = [], [], []
    channels_last_layout = loop_module.training_layout
    for repeat in range(repeats):
        for layout, layout_loops in (("channels-last", loops), ("NCHW", nchw_loops)):
            if layout == "NCHW":
                loop_module.training_layout = lambda device: torch.contiguous_format
            try:
                model.load_state_dict(state)
                wall, loop, done = run_finetune(model, image, scribbles, config)
            finally:
                loop_module.training_layout = channels_last_layout
            layout_loops.append(loop)
            if layout == "channels-last":
                walls.append(wall)
            log(f"training repeat {repeat + 1}/{repeats}, {layout}: {done} it in {loop:.2f} s")
    return walls, loops, nchw_loops


def throughput_lines(numbers: dict, repeats: int) -> list[str]:
    """The report's throughput section (without the training-step rows) from its numbers."""
    size, patch, output = numbers["size"], numbers["patch"], numbers["output"]
    batch, iterations = numbers["batch"], numbers["iterations"]
    loops, nchw_loops = numbers["loop_s"], numbers["nchw_loop_s"]
    loop, nchw_loop = statistics.median(loops), statistics.median(nchw_loops)
    return [
        f"### Fine-tuning throughput ({size} x {size} image, scribbles on 2 % of the pixels)",
        "",
        f"Default `TrainConfig`: patch {patch} (output {output}), batch {batch}, Adam, "
        f"elastic deformation on. {iterations} iterations per run, median of {repeats} runs. "
        f"Load average before: {numbers['load_before']}; after: {load_average()}.",
        "",
        "| quantity | value |",
        "|---|---:|",
        f"| training loop, {iterations} iterations (runs: "
        f"{', '.join(f'{x:.2f}' for x in loops)} s) | {loop:.2f} s |",
        f"| iterations/s | {numbers['iterations_per_s']:.2f} |",
        f"| the same loop with NCHW weights, as before (runs: "
        f"{', '.join(f'{x:.2f}' for x in nchw_loops)} s) | {nchw_loop:.2f} s |",
        f"| channels-last against NCHW (median loop times) | "
        f"{numbers['channels_last_vs_nchw']:.2f}x |",
        f"| training Mpx/s, output pixels ({batch} x {output}^2 per iteration) | "
        f"{numbers['output_mpx_per_s']:.3f} |",
        f"| training Mpx/s, input pixels ({batch} x {patch}^2 per iteration) | "
        f"{numbers['input_mpx_per_s']:.3f} |",
        f"| one-off setup per `finetune` call (weight map, checks), median | "
        f"{numbers['setup_s']:.2f} s |",
    ]


def step_layouts(
    model: UNet, patch: int, batch: int, repeats: int
) -> tuple[list[str], dict[str, float]]:
    """One forward + backward + Adam step, NCHW against channels-last (an experiment).

    Returns the report's rows and the median milliseconds per layout.
    """
    output = model.output_size(patch)
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(batch, 1, patch, patch, generator=generator)
    labels = torch.randint(0, 3, (batch, output, output), generator=generator)
    weights = torch.ones(batch, output, output)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rows, medians = [], {}
    for name, layout in (
        ("NCHW", torch.contiguous_format),
        ("channels-last input and weights (as `finetune` on the CPU)", torch.channels_last),
    ):
        model.to(memory_format=layout).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
        data = inputs.contiguous(memory_format=layout)

        def step(data: torch.Tensor = data, optimizer: torch.optim.Optimizer = optimizer) -> None:
            loss = weighted_loss(model(data), labels, weights)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        medians[name] = statistics.median(times) * 1e3
        rows.append(f"| one training step, {name} | {medians[name]:.0f} ms |")
    model.to(memory_format=torch.contiguous_format).eval()
    model.load_state_dict(state)
    return rows, medians


def bench_round(model: UNet, size: int, seconds: float) -> tuple[list[str], dict]:
    """Annotate (simulated) -> fine-tune -> predict -> mask on one image; lines and numbers."""
    load_before = load_average()
    start = time.perf_counter()
    image, dense, scribbles = training_data(size, seed=1)
    annotated = time.perf_counter()
    # a time budget alone (a trained model would otherwise stop after 100 iterations)
    config = TrainConfig(seconds=seconds, finetune_iterations=None, device="cpu")
    wall, loop, iterations = run_finetune(model, image, scribbles, config)
    trained = time.perf_counter()
    tiles = PredictConfig(tile_size=572, device="cpu")  # what TileConfig() was
    probabilities = predict(image, model, config=tiles)
    mask = class_mask(probabilities)
    finished = time.perf_counter()
    accuracy = float(np.mean(mask == dense))
    numbers = {
        "size": size,
        "budget_s": seconds,
        "load_before": load_before,
        "annotation_s": annotated - start,
        "setup_s": wall - loop,
        "loop_s": loop,
        "iterations": iterations,
        "predict_and_mask_s": finished - trained,
        "finetune_and_predict_s": finished - annotated,
        "pixel_accuracy": accuracy,
    }
    lines = [
        f"### One annotate -> fine-tune -> predict round, {size} x {size}",
        "",
        f"Load average before: {load_before}; after: {load_average()}. One run.",
        "",
        "| stage | seconds |",
        "|---|---:|",
        f"| simulated annotation (synthetic image + scribbles; a user would draw these) | "
        f"{annotated - start:.2f} |",
        f"| `finetune` setup (weight map, checks) | {wall - loop:.2f} |",
        f"| `finetune` training loop, {seconds:.0f} s budget ({iterations} iterations) | "
        f"{loop:.2f} |",
        f"| `predict` (tile {tiles.tile_size}, batch {tiles.batch_size}) + `class_mask` | "
        f"{finished - trained:.2f} |",
        f"| **total, fine-tune + predict** | **{finished - annotated:.2f}** |",
        f"| (pixel accuracy of the mask against the dense synthetic labels) | {accuracy:.3f} |",
        "",
    ]
    return lines, numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--iterations", type=int, default=20, help="iterations per timed run")
    parser.add_argument("--seconds", type=float, default=30.0, help="budget of the round")
    add_json_option(parser, "training")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = 1024
    if args.quick:
        size, args.iterations, args.repeats, args.seconds = 256, 2, 2, 2.0
    model, model_name = get_model()
    started = utc_now()
    lines = [
        "## Fine-tuning performance",
        "",
        f"Started {started}. Command: `python {' '.join(sys.argv)}`",
        "",
        *machine_lines(args.threads),
        f"- model: {model_name}; {model.describe()}",
        "",
    ]
    throughput_lines, throughput = bench_throughput(model, size, args.iterations, args.repeats)
    round_lines, one_round = bench_round(model, size, args.seconds)
    print("\n".join([*lines, *throughput_lines, *round_lines]), flush=True)
    results = {"arguments": vars(args), "model": model_name}
    write_json(args.json, results | {"throughput": throughput, "round": one_round}, started=started)


if __name__ == "__main__":
    main()
