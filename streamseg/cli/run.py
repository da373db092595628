"""``streamseg run INPUT -o OUTPUT --model M``: the main job."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

import click

from streamseg.cli.command import Command, examples
from streamseg.cli.flags import BitRate, config_option
from streamseg.cli.model_hint import no_model_error
from streamseg.config import RunConfig, nest_options
from streamseg.logs import redact
from streamseg.models.spec import ModelSpec
from streamseg.uris import scheme_of


@click.command(
    cls=Command,
    renamed={"--encoder": "--codec"},
    epilog=examples(
        "streamseg run street.mp4 -o out.mp4 -m model.onnx --size 260 --max-frames 125",
        "streamseg run street.mp4 -o out.mp4 -m fcn_resnet50 --labels-out labels/ --summary run.csv",
        "streamseg run a.mp4 b.mp4 rtsp://cam/1 -o 'out/{name}.mp4' --labels-out 'labels/{name}' -m model.onnx",
        "streamseg run rtsp://cam/1 -o rtsp://127.0.0.1:8554/seg -m model.onnx --latency-budget 200",
    ),
)
@click.argument("sources", nargs=-1)
@config_option(
    "outputs",
    multiple=True,
    default=(),
    help="Video output (mp4, mkv…, or a stream URL); repeat for several. With several sources a template: "
    "{name} is the source's name, {index} its position.",
)
@config_option("model", help="Built-in name (see `models list`), NAME:int8, or PATH.onnx.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), help="Model spec YAML for a foreign ONNX.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Run config YAML; flags win.")
@config_option("backend", help="auto picks TensorRT, then torch on CUDA, then ONNX Runtime [default: auto].")
@config_option(
    "precision",
    help="GPU backends: fp16 converts the model; bf16: openvino on CPUs with AMX/AVX512-BF16; "
    "int8 needs a Q/DQ model (auto runs it on openvino) [default: the model's own].",
)
@config_option("threads", type=click.IntRange(min=1), help="Inference threads [default: all cores].")
@config_option(
    "engine_streams",
    type=click.IntRange(min=1),
    help="openvino: frames inferred at once, the threads shared among them; 1: lowest latency "
    "[default: OpenVINO's throughput choice with a file source, 1 with live sources only].",
)
@config_option(
    "winograd",
    negation="--no-winograd",
    help="onnxruntime: big 3x3 convolutions as Winograd F(4x4,3x3), FP32 [default: on].",
)
@config_option(
    "engine_labels",
    negation="--no-engine-labels",
    help="CPU engines: the argmax runs in the engine, uint8 labels out (not with --smooth) [default: on].",
)
@config_option(
    "engine_normalize",
    negation="--no-engine-normalize",
    help="openvino: the engine takes uint8 pictures and normalizes them in its graph [default: on].",
)
@config_option("compile", help="torch backend: compile the model with torch.compile (inductor); slow first frame.")
@config_option("decode", help="Decode files on the GPU (NVDEC) for a CUDA backend; auto: when present [default: auto].")
@config_option("input_size", type=click.IntRange(min=16), help="Short side of the model input (FCN: 520).")
@config_option("overlay", help="What to draw [default: overlay].")
@config_option("alpha", type=float, help="Overlay opacity 0..1 [default: 0.5].")
@config_option("classes", help="Draw only these classes, comma-separated.")
@config_option("labels_out", help="Folder for per-frame label maps and summary.csv (a template, as -o).")
@config_option("labels_format", help="Indexed PNGs or one labels.npz.")
@config_option("summary", help="Per-frame summary file (.csv or .jsonl; a template, as -o).")
@config_option(
    "batch",
    type=click.IntRange(min=1),
    help="Frames per inference call, across sources [default: the number of sources, capped by the backend].",
)
@config_option(
    "batch_timeout",
    type=click.FloatRange(min=0),
    help="Milliseconds to wait for a full batch before running a partial one [default: 5].",
)
@config_option("max_frames", type=click.IntRange(min=1), help="Stop after N frames.")
@config_option("queue_size", type=int, help="Frames each stage queue holds [default: 4 for files, 1 for live inputs].")
@config_option("publish", help="Publish label maps on this ZeroMQ endpoint, e.g. tcp://127.0.0.1:5555.")
@config_option("metrics_port", type=int, help="Serve Prometheus /metrics and /health on this port.")
@config_option("preview_port", type=int, help="Serve a live preview page on this port.")
@config_option("serve_host", help="Interface for --metrics-port, --preview and --foxglove [default: 127.0.0.1].")
@config_option(
    "api",
    help="The /sources API on --metrics-port: on (changes need the token), read-only, or off [default: on].",
)
@config_option(
    "api_token_file", help="Take the /sources API token from this file [default: a new one; its path is printed]."
)
@config_option(
    "output_root", help="POSTed outputs must lie under this folder [default: the folders of the run's outputs]."
)
@config_option("input_root", help="POSTed file sources must lie under this folder [default: none are allowed].")
@config_option("allow_loopback_sources", help="Let POSTed http(s):// and tcp:// sources reach this machine.")
@config_option("max_sources", type=click.IntRange(min=1), help="Sources running at once [default: 64].")
@config_option("mcap", help="ROS 2 messages (images, label maps, class fractions) in this MCAP file; also -o X.mcap.")
@config_option("foxglove_port", type=int, help="Serve the MCAP channels live to Foxglove on this port.")
@config_option(
    "foxglove_origins",
    multiple=True,
    default=(),
    help="A web page origin that may open --foxglove; repeat for several [default: https://app.foxglove.dev].",
)
@config_option("mqtt", help="Publish per-frame JSON summaries to mqtt://HOST[:PORT]/TOPIC.")
@config_option("mqtt_labels", help="With --mqtt/--kafka: also publish label maps (PNG).")
@config_option("kafka", help="Publish the --mqtt events to kafka://HOST:PORT/TOPIC.")
@config_option("transport", help="RTSP transport, in and out [default: tcp].")
@config_option("realtime", help="Play a file SOURCE at its native rate, as a camera.")
@config_option("loop", help="With --realtime: start the file over at its end.")
@config_option("read_timeout", type=float, help="Seconds without data before a live input reconnects [default: 5].")
@config_option("reconnect_delay", type=float, help="First reconnect wait, doubled per failure [default: 0.5 s].")
@config_option("reconnect_max_delay", type=float, help="Longest reconnect wait [default: 10 s].")
@config_option(
    "reconnect_give_up",
    type=int,
    help="Give up after N failed connection attempts in a row, the first connection's too [default: never].",
)
@config_option(
    "undecodable_timeout",
    type=float,
    help="Reconnect a live input that sends nothing decodable for this many seconds [default: 10].",
)
@config_option(
    "max_pixels",
    type=click.IntRange(min=1),
    help="Fail a source whose pictures have more pixels than N, before decoding them [default: 33177600, 7680x4320].",
)
@config_option(
    "decode_threads",
    type=click.IntRange(min=1),
    help="Threads per decoder [default: a quarter of the cores, at least 1: the engine has the rest].",
)
@config_option(
    "encode_threads",
    type=click.IntRange(min=1),
    help="Threads per libx264 encoder [default: a quarter of the cores, at least 1].",
)
@config_option("codec", help="H.264 encoder: auto | libx264 | h264_nvenc [default: auto].")
@config_option("bitrate", type=BitRate(), help="Video bitrate, e.g. 2M or 800k [default: quality-based].")
@config_option("gop", type=int, help="Keyframe interval in frames [default: about 1 s for streams].")
@config_option(
    "interval",
    type=click.IntRange(min=1),
    help="Infer every Nth frame; the others get the last inferred labels, carried forward [default: 1].",
)
@config_option(
    "propagate",
    help="How labels are carried to frames not inferred: none (held), flow (DIS optical flow), or mv (the H.264 "
    "decoder's motion vectors, DIS flow for frames without them) [default: flow].",
)
@config_option(
    "smooth",
    type=click.FloatRange(min=0, max=1, min_open=True),
    help="Average class scores over inferred frames (motion-compensated, reset on cuts); the newest "
    "frame's weight, e.g. 0.5.",
)
@config_option(
    "latency_budget",
    type=click.FloatRange(min=0, min_open=True),
    help="Live: every frame out within MS at the camera's rate; streamseg picks the inference interval.",
)
@config_option(
    "latency_prefer",
    help="With --latency-budget: keep the largest input size that fits (detail), or infer as many frames as "
    "possible at a smaller one (fresh) [default: detail].",
)
@config_option(
    "latency_sizes",
    type=str,
    metavar="S1,S2,...",
    help="With --latency-budget: input short sides it may pick, e.g. 520,360,256 "
    "[default: --size or the model's, and 4 smaller, each about half the pixels].",
)
@config_option(
    "segment_seconds",
    type=float,
    help="Record file outputs in N-second segments; -o is a strftime pattern, e.g. rec/%Y%m%d-%H%M%S.mp4.",
)
@config_option("keep_gigabytes", type=float, help="With --segment-seconds: delete the oldest segments past N GB.")
@config_option(
    "rois",
    multiple=True,
    default=(),
    metavar="NAME=X1,Y1;X2,Y2;...",
    help="A region of interest for every source: a polygon in fractions of the frame (0..1); repeat for several.",
)
@config_option(
    "events",
    multiple=True,
    default=(),
    metavar="RULE",
    help="An event rule, e.g. 'person in crosswalk > 0.02 for 0.5s [cooldown 10s]'; repeat for several.",
)
@config_option("coverage", help="Coverage columns and messages: the rules' classes, or every class [default: rules].")
@config_option("events_dir", help="Write a clip, a JSON sidecar and a thumbnail per event into this folder.")
@config_option("pre_roll", type=click.FloatRange(min=0), help="Seconds of an event clip before the event [default: 5].")
@config_option("post_roll", type=click.FloatRange(min=0), help="Seconds of an event clip after the event [default: 5].")
@config_option(
    "pre_roll_megabytes",
    type=click.FloatRange(min=0, min_open=True),
    help="Cap on each source's buffer of encoded video kept for the pre-roll [default: 64].",
)
@config_option("webhook", help="POST each event's start and end as JSON to this http(s) URL.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def run(
    sources: tuple[str, ...], spec_path: str | None, config_path: str | None, no_progress: bool, **flags: Any
) -> None:
    """Segment SOURCES (video files, rtsp://, udp://, http(s):// HLS, rtmp://, /dev/videoN; any mix) with one
    model, batched across them, and write each one's overlay video or stream, label maps and summary."""
    from streamseg.pipeline import Pipeline, SourcesFailed

    config = build_config({**flags, "sources": sources}, spec_path, config_path)
    if not config.sources:
        raise click.UsageError("no SOURCE given (or a `sources:` list in --config)")
    if not (
        config.outputs
        or config.labels_out
        or config.summary
        or config.publish
        or config.preview_port is not None
        or config.mcap
        or config.foxglove_port is not None
        or config.mqtt
        or config.kafka
        or config.events_dir
        or config.webhook
        or any(s.outputs or s.labels_out or s.summary for s in config.sources)
    ):
        raise click.UsageError(
            "nothing to write: give -o OUTPUT, --labels-out DIR, --summary FILE, --publish "
            "ENDPOINT, --preview PORT, --mcap FILE, --foxglove PORT, --mqtt URL, --kafka URL, --events-dir DIR "
            "or --webhook URL"
        )
    if config.model is None:
        raise no_model_error()

    pipeline = Pipeline(config=config)
    _stop_on_signals(pipeline)
    pipeline.start()
    _announce_servers(pipeline)
    bar = _progress(None, ", ".join(pipeline.lanes), disabled=no_progress)
    pipeline.on_result = lambda result: _advance(bar, pipeline)
    try:
        summary = pipeline.run()
    finally:
        bar.close()
    _print_summary(summary, _written(pipeline))
    if summary.failed:
        failed = "; ".join(f"{name}: {why}" for name, why in summary.failed.items())
        raise SourcesFailed(f"{len(summary.failed)} of {len(summary.sources)} sources failed: {failed}")


def _advance(bar, pipeline) -> None:
    """One frame more; the total is known once every source is a file that has opened."""
    if bar.total is None:
        lanes = list(pipeline.lanes.values())
        if all(lane.info is not None and lane.info.frames and not lane.live for lane in lanes):
            limit = pipeline.config.max_frames
            bar.total = sum(min(lane.info.frames, limit or lane.info.frames) for lane in lanes)
            bar.refresh()
    bar.update(1)


def _written(pipeline) -> list[str]:
    """The files and folders this run wrote, as the user named them (templates filled in); folders end in /."""
    found: list[str] = []
    for lane in pipeline.lanes.values():
        for place in lane.outputs.paths(pipeline.config):
            shown = place.path.rstrip("/") + "/" if place.names is not None else place.path
            if os.path.exists(place.path) and shown not in found:
                found.append(shown)
        if pipeline.config.encoder.segment_seconds is not None:  # new files per segment: the pattern says where
            found.extend(f"segments {uri}" for uri in lane.outputs.videos if scheme_of(uri).writes == "file")
    if pipeline.config.mcap and os.path.exists(pipeline.config.mcap):
        found.append(pipeline.config.mcap)
    if pipeline.config.events_dir and os.path.isdir(pipeline.config.events_dir):
        found.append(pipeline.config.events_dir.rstrip("/") + "/")
    return found


def build_config(flags: dict[str, Any], spec_path: str | None, config_path: str | None) -> RunConfig:
    """RunConfig from flags by option name (the ones given: not None, not empty), a spec and a config file.

    Which nested option a flag sets comes from the config model (``streamseg.config.nest_options``).
    """
    given = nest_options({k: v for k, v in flags.items() if v is not None and v != ()})
    if spec_path:
        given["spec"] = ModelSpec.from_yaml(spec_path)
    return RunConfig.from_yaml(config_path, given) if config_path else RunConfig.build(given)


def _announce_servers(pipeline) -> None:
    """One line per local page, so a user (or a script) knows where to look."""
    if pipeline.metrics is not None:
        click.echo(
            f"streamseg: metrics at {pipeline.metrics.url}metrics, health at {pipeline.metrics.url}health", err=True
        )
        token = pipeline.metrics.access.token
        if token is not None:  # the path only: the token stays out of logs and terminals
            click.echo(
                f"streamseg: API token in {token.path} (POST/DELETE /sources: Authorization: Bearer TOKEN)", err=True
            )
    if pipeline.preview is not None:
        click.echo(f"streamseg: preview at {pipeline.preview.url}", err=True)
    if pipeline.publisher is not None:
        click.echo(f"streamseg: publishing label maps on {redact(pipeline.publisher.endpoint)}", err=True)
    for sink in getattr(pipeline, "downstream", ()):  # MCAP file, Foxglove server, MQTT/Kafka
        click.echo(f"streamseg: {sink.announcement}", err=True)


def _stop_on_signals(pipeline) -> None:
    """First Ctrl-C / SIGTERM stops reading (a camera still awaited too) and finalizes outputs; a second aborts."""

    def handler(signum, frame):
        pipeline.stop()
        click.echo("\nstreamseg: stopping, finalizing outputs (Ctrl-C again to abort)", err=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _progress(total: int | None, name: str, *, disabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=name[-40:],
        unit="frame",
        disable=disabled or not sys.stderr.isatty(),
        dynamic_ncols=True,
        smoothing=0.1,
    )


def _print_summary(summary, written: list[str]) -> None:
    echo = lambda text="": click.echo(text, err=True)  # noqa: E731
    every_source_failed = summary.sources and len(summary.failed) == len(summary.sources)
    state = "failed" if every_source_failed else "stopped early" if summary.stopped_early else "done"
    echo(
        f"streamseg: {state}: {summary.frames_in} frames in, {summary.frames_out} out, "
        f"{sum(summary.dropped.values())} dropped, {summary.fps:.2f} fps over {summary.wall_seconds:.1f} s "
        f"on {summary.backend}{'; wrote ' + ', '.join(written) if written else ''}"
    )
    links = summary.extra
    if "reconnects" in links or "output_reconnects" in links:
        echo(
            f"streamseg: live: {links.get('reconnects', 0)} input reconnects, "
            f"{links.get('output_reconnects', 0)} output reconnects, "
            f"{links.get('output_dropped', 0)} frames dropped while an output was down"
        )
    if summary.delivered:
        counts = ", ".join(f"{redact(name)} {count}" for name, count in summary.delivered.items())
        echo(f"streamseg: delivered: {counts}")
    if summary.latency.get("items"):
        echo(
            f"streamseg: latency from capture to written: p50 {summary.latency['p50_ms']:.0f} ms, "
            f"p99 {summary.latency['p99_ms']:.0f} ms"
        )
    if summary.results_dropped:
        echo(f"streamseg: {summary.results_dropped} frames written but dropped before the reader took them")
    if len(summary.sources) > 1:
        batches = ", ".join(f"{size}: {count}" for size, count in summary.batches.items())
        echo(f"streamseg: inference calls by frames per call: {batches}")
        echo(f"  {'source':<24}{'state':>10}{'in':>7}{'out':>7}{'dropped':>9}{'fps':>8}{'p50 ms':>9}")
        for row in summary.sources:
            echo(
                f"  {row['name'][:24]:<24}{row['state']:>10}{row['frames_in']:>7}{row['frames_out']:>7}"
                f"{row['dropped']:>9}{row['fps']:>8.2f}{row['latency_p50_ms']:>9.0f}"
            )
        echo(
            f"  {'total':<24}{'':>10}{summary.frames_in:>7}{summary.frames_out:>7}"
            f"{sum(summary.dropped.values()):>9}{summary.fps:>8.2f}"
        )
    for row in summary.sources:
        if "settings" in row:
            echo(f"streamseg: {row['name']}: {row['settings']}; labels carried by {row['propagation']}")
    echo(f"  {'stage':<11}{'frames':>7}{'mean ms':>10}{'cpu ms':>9}{'p50 ms':>9}{'p99 ms':>9}{'busy s':>9}")
    for name, s in summary.stages.items():
        echo(
            f"  {name:<11}{s['items']:>7}{s['mean_ms']:>10.1f}{s['cpu_ms']:>9.1f}{s['p50_ms']:>9.1f}{s['p99_ms']:>9.1f}"
            f"{s['busy_s']:>9.1f}"
        )
    # a stage's cpu ms is its own thread's: the engine's threads and FFmpeg's codec threads are only in this one
    echo(f"  process CPU {summary.cpu_ms_per_frame:.1f} ms per frame (every thread: engine and codecs included)")
