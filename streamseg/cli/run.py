"""``streamseg run INPUT -o OUTPUT --model M``: the main job."""

from __future__ import annotations

import signal
import sys
from typing import Any

import click

from streamseg.composite import MODES
from streamseg.config import RunConfig
from streamseg.logs import redact
from streamseg.models.spec import ModelSpec


@click.command()
@click.argument("source")
@click.option("-o", "--output", "outputs", multiple=True, help="Video output (mp4, mkv…); repeat for several.")
@click.option("-m", "--model", help="Built-in name (see `models list`), NAME:int8, or PATH.onnx.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), help="Model spec YAML for a foreign ONNX.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Run config YAML; flags win.")
@click.option("--backend", help="auto | tensorrt | torch | onnxruntime | openvino  [default: auto]")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "int8"]),
              help="GPU backends: fp16 converts the model; bf16: openvino on CPUs with AMX/AVX512-BF16; "
                   "int8 needs a Q/DQ model [default: the model's own].")
@click.option("--threads", type=int, help="Inference threads [default: all cores].")
@click.option("--winograd/--no-winograd", default=None,
              help="onnxruntime: big 3x3 convolutions as Winograd F(4x4,3x3), FP32 [default: on].")
@click.option("--compile", "compile", is_flag=True, default=None,
              help="torch backend: compile the model with torch.compile (inductor); slow first frame.")
@click.option("--decode", type=click.Choice(["auto", "cpu", "gpu"]),
              help="Decode files on the GPU (NVDEC) for a CUDA backend; auto: when present [default: auto].")
@click.option("--size", "input_size", type=int, help="Short side of the model input (FCN: 520).")
@click.option("--overlay", type=click.Choice(MODES), help="What to draw [default: overlay].")
@click.option("--alpha", type=float, help="Overlay opacity 0..1 [default: 0.5].")
@click.option("--classes", help="Draw only these classes, comma-separated.")
@click.option("--labels-out", help="Folder for per-frame label maps and summary.csv.")
@click.option("--labels-format", type=click.Choice(["png", "npz"]), help="Indexed PNGs or one labels.npz.")
@click.option("--summary", help="Per-frame summary file (.csv or .jsonl).")
@click.option("--max-frames", type=int, help="Stop after N frames.")
@click.option("--queue-size", type=int, help="Frames each stage queue holds [default: 4 for files, 1 for live inputs].")
@click.option("--publish", help="Publish label maps on this ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555.")
@click.option("--metrics-port", type=int, help="Serve Prometheus /metrics and /health on this port.")
@click.option("--preview", "preview_port", type=int, help="Serve a live preview page on this port.")
@click.option("--serve-host", help="Interface for --metrics-port and --preview [default: 127.0.0.1].")
@click.option("--transport", type=click.Choice(["tcp", "udp"]), help="RTSP transport, in and out [default: tcp].")
@click.option("--realtime", is_flag=True, default=None, help="Play a file SOURCE at its native rate, as a camera.")
@click.option("--loop", is_flag=True, default=None, help="With --realtime: start the file over at its end.")
@click.option("--read-timeout", type=float, help="Seconds without data before a live input reconnects [default: 5].")
@click.option("--reconnect-delay", type=float, help="First reconnect wait, doubled per failure [default: 0.5 s].")
@click.option("--reconnect-max-delay", type=float, help="Longest reconnect wait [default: 10 s].")
@click.option("--reconnect-give-up", type=int, help="Give up after N failed reconnects in a row [default: never].")
@click.option("--encoder", "codec", help="H.264 encoder: auto | libx264 | h264_nvenc [default: auto].")
@click.option("--bitrate", help="Video bitrate, e.g. 2M or 800k [default: quality-based].")
@click.option("--gop", type=int, help="Keyframe interval in frames [default: about 1 s for streams].")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(source: str, spec_path: str | None, config_path: str | None, no_progress: bool, **flags: Any) -> None:
    """Segment SOURCE (a video file, rtsp://, udp://, http(s):// HLS, rtmp://, /dev/videoN) and write the
    overlay video or stream, label maps and summary."""
    from streamseg.pipeline import Pipeline

    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    _nest_live_flags(given)
    if spec_path:
        given["spec"] = ModelSpec.from_yaml(spec_path)
    config = RunConfig.from_yaml(config_path, given) if config_path else RunConfig.build(given)
    if not (config.outputs or config.labels_out or config.summary or config.publish or config.preview_port is not None):
        raise click.UsageError("nothing to write: give -o OUTPUT, --labels-out DIR, --summary FILE, --publish "
                               "ENDPOINT or --preview PORT")

    pipeline = Pipeline(source, config=config)
    _stop_on_signals(pipeline)
    pipeline.start()
    _announce_servers(pipeline)
    total = pipeline.info.frames
    if config.max_frames:
        total = min(total, config.max_frames) if total else config.max_frames
    bar = _progress(total, redact(pipeline.info.name), disabled=no_progress)
    pipeline.on_result = lambda result: bar.update(1)
    try:
        summary = pipeline.run()
    finally:
        bar.close()
    _print_summary(summary)


SOURCE_FLAGS = ("transport", "realtime", "loop", "read_timeout", "reconnect_delay", "reconnect_max_delay",
                "reconnect_give_up")
ENCODER_FLAGS = ("codec", "bitrate", "gop")


def _nest_live_flags(given: dict[str, Any]) -> None:
    """Move live-input and encoder flags into RunConfig's ``live`` and ``encoder`` options."""
    for key, names in (("live", SOURCE_FLAGS), ("encoder", ENCODER_FLAGS)):
        nested = {name: given.pop(name) for name in names if name in given}
        if nested:
            given[key] = nested
    bitrate = given.get("encoder", {}).get("bitrate")
    if bitrate is not None:
        given["encoder"]["bitrate"] = _parse_bitrate(bitrate)


def _parse_bitrate(text: str) -> int:
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    try:
        return int(float(text[:-1] if scale > 1 else text) * scale)
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected bits per second, e.g. 2M or 800k", param_hint="--bitrate")


def _announce_servers(pipeline) -> None:
    """One line per local page, so a user (or a script) knows where to look."""
    if pipeline.metrics is not None:
        click.echo(f"streamseg: metrics at {pipeline.metrics.url}metrics, health at {pipeline.metrics.url}health",
                   err=True)
    if pipeline.preview is not None:
        click.echo(f"streamseg: preview at {pipeline.preview.url}", err=True)
    if pipeline.publisher is not None:
        click.echo(f"streamseg: publishing label maps on {redact(pipeline.publisher.endpoint)}", err=True)


def _stop_on_signals(pipeline) -> None:
    """First Ctrl-C / SIGTERM stops reading and finalizes outputs; a second one aborts."""

    def handler(signum, frame):
        pipeline.stop()
        click.echo("\nstreamseg: stopping, finalizing outputs (Ctrl-C again to abort)", err=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _progress(total: int | None, name: str, *, disabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=name[-40:], unit="frame", disable=disabled or not sys.stderr.isatty(),
                dynamic_ncols=True, smoothing=0.1)


def _print_summary(summary) -> None:
    echo = lambda text="": click.echo(text, err=True)  # noqa: E731
    state = "stopped early" if summary.stopped_early else "done"
    echo(f"streamseg: {state}: {summary.frames_in} frames in, {summary.frames_out} out, "
         f"{sum(summary.dropped.values())} dropped, {summary.fps:.2f} fps over {summary.wall_seconds:.1f} s "
         f"on {summary.backend}")
    links = summary.extra
    if "reconnects" in links or "output_reconnects" in links:
        echo(f"streamseg: live: {links.get('reconnects', 0)} input reconnects, "
             f"{links.get('output_reconnects', 0)} output reconnects, "
             f"{links.get('output_dropped', 0)} frames dropped while an output was down")
    if summary.latency.get("items"):
        echo(f"streamseg: latency from capture to written: p50 {summary.latency['p50_ms']:.0f} ms, "
             f"p99 {summary.latency['p99_ms']:.0f} ms")
    echo(f"  {'stage':<11}{'frames':>7}{'mean ms':>10}{'p50 ms':>9}{'p99 ms':>9}{'busy s':>9}")
    for name, s in summary.stages.items():
        echo(f"  {name:<11}{s['items']:>7}{s['mean_ms']:>10.1f}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}{s['busy_s']:>9.1f}")
