"""``streamseg batch INPUT... -o OUTDIR --model M``: many videos, resumable, locally or on a Ray cluster."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import click

from streamseg.cli.command import Command, examples
from streamseg.cli.flags import BitRate, config_option, output_option
from streamseg.cli.model_hint import no_model_error
from streamseg.config import RunConfig
from streamseg.errors import ConfigError, StreamsegError

# run options that name one output or server: a batch makes its own per video, and servers don't multiply
PER_RUN_ONLY = ("outputs", "labels_out", "summary", "publish", "metrics_port", "preview_port")


class BatchIncomplete(StreamsegError):
    """Some videos failed or ended short; the table above says which."""

    exit_code = 1


@click.command(
    cls=Command,
    renamed={"--output-dir": "--output", "--encoder": "--codec"},
    epilog=examples(
        "streamseg batch recordings/ -o segmented/ -m model.onnx --size 260 --labels-out",
        "streamseg batch 'day*/*.mp4' @more.txt -o segmented/ -m fcn_resnet50 --workers 2 --report batch.csv",
        "streamseg batch recordings/ -o /shared/segmented -m model.onnx --ray auto --ray-gpus 0.25",
    ),
)
@click.argument("inputs", nargs=-1, required=True)
@output_option(
    "Outputs mirror each input's path under this folder; the manifest lives here too.",
    dest="outdir",
    required=True,
    type=click.Path(file_okay=False),
    metavar="OUTDIR",
)
@config_option("model", help="Built-in name (see `models list`), NAME:int8, or PATH.onnx.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), help="Model spec YAML for a foreign ONNX.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Run config YAML; flags win.")
@config_option("backend", help="As for `streamseg run` [default: auto].")
@config_option("precision", help="As for `streamseg run`.")
@config_option(
    "threads", type=click.IntRange(min=1), help="Inference threads per video [default: the cores split among workers]."
)
@config_option("winograd", negation="--no-winograd", help="onnxruntime: Winograd 3x3 convolutions [default: on].")
@config_option("input_size", type=click.IntRange(min=16), help="Short side of the model input (FCN: 520).")
@config_option("overlay", help="What to draw [default: overlay].")
@config_option("alpha", type=float, help="Overlay opacity 0..1 [default: 0.5].")
@config_option("classes", help="Draw only these classes, comma-separated.")
@click.option("--labels-out", "labels", is_flag=True, help="Also write label maps (and summary.csv) to NAME.labels/.")
@config_option("labels_format", help="Indexed PNGs or one labels.npz.")
@click.option("--summary", is_flag=True, help="Also write per-frame class fractions to NAME.summary.csv.")
@config_option("max_frames", type=click.IntRange(min=1), help="Stop each video after N frames.")
@config_option(
    "max_pixels",
    type=click.IntRange(min=1),
    help="Fail a video whose pictures have more pixels than N [default: 7680x4320].",
)
@config_option("codec", help="H.264 encoder: auto | libx264 | h264_nvenc [default: auto].")
@config_option("bitrate", type=BitRate(), help="Video bitrate, e.g. 2M or 800k [default: quality-based].")
@config_option("gop", type=int, help="Keyframe interval in frames.")
@click.option(
    "-j",
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Videos at once, each in its own process (1: one by one in this process).",
)
@click.option(
    "--retries",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Retry a failure that may be transient (not an unreadable input) up to N times.",
)
@click.option("--force", is_flag=True, help="Redo videos the manifest says are done.")
@click.option("--verify", is_flag=True, help="Compare inputs by sha256 instead of size and mtime.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Per-video table to FILE.csv|.json.")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[ADDRESS]",
    help="Run each video as a task on a Ray cluster: ADDRESS, or RAY_ADDRESS / the local `ray start` "
    "cluster. Put it after the inputs, or give an address.",
)
@click.option("--ray-cpus", type=float, default=1.0, show_default=True, help="CPUs each Ray task reserves.")
@click.option(
    "--ray-gpus",
    type=float,
    default=0.0,
    show_default=True,
    help="GPUs each Ray task reserves; 0.25 lets four videos share one GPU.",
)
@click.option(
    "--shared-outdir",
    is_flag=True,
    help="Ray: OUTDIR is the same folder on every node (a bind mount the filesystem check can't tell).",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def batch(
    inputs: tuple[str, ...],
    outdir: str,
    spec_path: str | None,
    config_path: str | None,
    labels: bool,
    summary: bool,
    workers: int,
    retries: int,
    force: bool,
    verify: bool,
    report_path: str | None,
    ray_address: str | None,
    ray_cpus: float,
    ray_gpus: float,
    shared_outdir: bool,
    no_progress: bool,
    **flags: Any,
) -> None:
    """Segment every video in INPUTS (files, folders searched recursively, globs, @list.txt) into OUTDIR.

    Safe to interrupt and re-run: finished videos are skipped, the rest redone. Ctrl-C once stops taking
    new videos, twice aborts the running ones (removing their partial outputs)."""
    from streamseg.batch.driver import BatchRun, BatchSettings
    from streamseg.batch.inputs import collect_inputs
    from streamseg.batch.table import format_table, summary_line, write_report

    config = _config(flags, spec_path, config_path)
    if report_path and Path(report_path).suffix.lower() not in (".csv", ".json"):
        raise ConfigError(f"--report {report_path}: expected a .csv or .json file")
    out = Path(outdir)
    videos = collect_inputs(inputs, out)
    if not videos:
        raise ConfigError(f"no videos found in {', '.join(inputs)}")
    settings = BatchSettings(
        out, labels=labels, summary=summary, force=force, verify=verify, retries=retries, progress=not no_progress
    )
    make_executor, threads = _executor(workers, ray_address, ray_cpus, ray_gpus, shared_outdir, out)
    result = BatchRun(videos, config, settings, make_executor, threads).run()
    echo = functools.partial(click.echo, err=True)
    shown = [o for o in result.outcomes if o.status != "skipped"] if len(result.outcomes) > 50 else result.outcomes
    if shown:
        echo(format_table(shown))
    if report_path:
        write_report(Path(report_path), result.outcomes)
    echo(summary_line(result))
    if result.interrupted:
        left = [o.key for o in result.outcomes if o.status in ("left", "aborted")]
        if left:
            echo(f"streamseg: left for a re-run ({len(left)}): {', '.join(left[:10])}{' …' if len(left) > 10 else ''}")
        raise KeyboardInterrupt
    if result.exit_code:
        bad = result.count("failed", "partial")
        raise BatchIncomplete(f"{bad} of {len(result.outcomes)} videos failed or ended short (see the table)")


def _config(flags: dict[str, Any], spec_path: str | None, config_path: str | None) -> RunConfig:
    from streamseg.cli.run import build_config

    config = build_config(flags, spec_path, config_path)
    named = [name for name in PER_RUN_ONLY if getattr(config, name) not in (None, ())]
    if named:
        raise ConfigError(
            f"{config_path or 'options'}: {', '.join(named)}: per-run outputs and servers don't apply "
            "to a batch (it writes each video's outputs under OUTDIR; use the --labels-out / --summary "
            "flags)"
        )
    if config.model is None:
        raise no_model_error()
    return config


def _executor(
    workers: int, ray_address: str | None, ray_cpus: float, ray_gpus: float, shared_outdir: bool, outdir: Path
):
    """The executor factory, and the inference threads each video gets."""
    if ray_address is not None:
        from streamseg.batch.ray_executor import RayExecutor, connect, require_ray

        if Path(ray_address).exists():
            raise ConfigError(
                f"--ray took {ray_address!r} as the cluster address: put --ray after the inputs, or write --ray auto"
            )
        require_ray()

        def make(progress):  # joins the cluster only when some video is left to do
            return RayExecutor(connect(ray_address, outdir, shared_outdir), ray_cpus, ray_gpus, progress)

        return make, max(1, int(ray_cpus))
    from streamseg.batch.local import InProcessExecutor, ProcessExecutor, cpu_count

    threads = max(1, cpu_count() // workers)
    if workers == 1:
        return InProcessExecutor, None
    return (lambda progress: ProcessExecutor(workers, progress)), threads
