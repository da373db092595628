"""``streamseg bench INPUT --model M``: end-to-end vs. bare engine vs. the naive Hub and same-engine loops."""

from __future__ import annotations

import json
from pathlib import Path

import click

from streamseg.bench import MODES
from streamseg.cli.command import examples
from streamseg.cli.flags import backend_option, model_option, output_option, precision_option, size_option


@click.command(
    epilog=examples(
        "streamseg bench street.mp4 -m model.onnx --frames 30",
        "streamseg bench street.mp4 -m model.onnx --streams 4 --size 260 --frames 20",
        "streamseg bench street.mp4 -m fcn_resnet50 --backend openvino --precision bf16 --modes bare,end-to-end",
    )
)
@click.argument("sources", nargs=-1, required=True)
@model_option(required=True)
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), help="Model spec YAML for a foreign ONNX.")
@backend_option(default="auto", help="As `run --backend`.")
@precision_option(
    help="As `run --precision` [default: the model's own]; the naive loop stays FP32, same-engine follows it."
)
@click.option("--threads", type=int, help="Inference threads [default: all cores].")
@click.option(
    "--engine-streams",
    type=click.IntRange(min=1),
    help="As `run --engine-streams`, bare and end-to-end [default: what `run` picks for a file].",
)
@click.option("--winograd/--no-winograd", default=True, show_default=True, help="As `run --winograd`.")
@click.option("--engine-labels/--no-engine-labels", default=True, show_default=True, help="As `run --engine-labels`.")
@click.option(
    "--engine-normalize/--no-engine-normalize", default=True, show_default=True, help="As `run --engine-normalize`."
)
@click.option("--compile", "compile", is_flag=True, help="torch backend: torch.compile (inductor) the model.")
@click.option("--cuda-graphs", is_flag=True, help="Bare engine: replay captured CUDA graphs (tensorrt, torch).")
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Bare engine: frames per inference call (copies of one frame), fps counts frames; with "
    "--streams: frames per inference call across the streams [default there: the number of streams].",
)
@click.option("--frames", type=click.IntRange(min=2), default=30, show_default=True, help="Frames per mode.")
@size_option()
@click.option("--modes", default=",".join(MODES), show_default=True, help="Which to measure, comma-separated.")
@click.option(
    "--naive-weights",
    type=click.Choice(["none", "pretrained"]),
    default="none",
    show_default=True,
    help="Weights of the eager model; must match the ONNX file's.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of random weights (as `models export`).")
@click.option(
    "--peak-tflops",
    type=click.FloatRange(min=0, min_open=True),
    help="The device's peak for the engine's precision, for the FLOP floor [default: known GPUs only].",
)
@output_option("Keep the end-to-end video here.", type=click.Path(dir_okay=False))
@click.option(
    "--streams",
    type=click.IntRange(min=1),
    help="Measure N streams (SOURCE repeated, or the SOURCES given) in one batched process against N "
    "separate `streamseg run` processes, side by side.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option(
    "--plot", type=click.Path(dir_okay=False), help="Also draw per-stage times to this PNG (needs matplotlib)."
)
def bench(
    sources: tuple[str, ...],
    model: str,
    spec_path: str | None,
    backend: str,
    precision: str | None,
    threads: int | None,
    engine_streams: int | None,
    winograd: bool,
    engine_labels: bool,
    engine_normalize: bool,
    compile: bool,
    cuda_graphs: bool,
    batch: int,
    frames: int,
    input_size: int | None,
    modes: str,
    naive_weights: str,
    seed: int,
    peak_tflops: float | None,
    output: str | None,
    streams: int | None,
    as_json: bool,
    plot: str | None,
) -> None:
    """Measure the pipeline on SOURCE against the bare engine and two loops a user would write.

    naive: the PyTorch Hub example, torchvision eager FP32; same-engine: this run's engine and precision,
    one frame after the other on one thread (decode, preprocess, infer, argmax, blend, encode).
    """
    from streamseg.bench import run_benchmark
    from streamseg.bench.report import as_text
    from streamseg.models.spec import ModelSpec

    spec = ModelSpec.from_yaml(spec_path) if spec_path else None
    if streams or len(sources) > 1:
        from streamseg.bench.streams import as_text as streams_text
        from streamseg.bench.streams import measure_streams
        from streamseg.models import open_model

        chosen = list(sources) * (streams or 1) if len(sources) == 1 else list(sources)
        model_path = open_model(model, spec).path
        click.echo(f"streamseg bench: measuring {len(chosen)} streams, one process then separate ones…", err=True)
        report = measure_streams(
            chosen,
            model_path,
            frames=frames,
            backend=backend,
            threads=threads,
            size=input_size,
            precision=precision,
            winograd=winograd,
            batch=None if batch == 1 else batch,
        )  # 1, the default: one per stream
        click.echo(json.dumps(report) if as_json else streams_text(report))
        return
    source = sources[0]
    measured = tuple(m.strip() for m in modes.split(",") if m.strip())
    report = run_benchmark(
        source,
        model,
        frames=frames,
        backend=backend,
        threads=threads,
        precision=precision,
        winograd=winograd,
        engine_labels=engine_labels,
        engine_normalize=engine_normalize,
        size=input_size,
        modes=measured,
        naive_weights=naive_weights,
        seed=seed,
        peak_tflops=peak_tflops,
        spec=spec,
        output=output,
        compile=compile,
        batch=batch,
        cuda_graphs=cuda_graphs,
        engine_streams=engine_streams,
        progress=lambda mode: click.echo(f"streamseg bench: measuring {mode}…", err=True),
    )
    if plot:
        from streamseg.bench.plot import plot_stages

        plot_stages([report], Path(plot))
    click.echo(json.dumps(report) if as_json else as_text(report))
