"""OpenVINO with one stream against its throughput streams, with and without the queued request, side by side.

Each row alternates `streamseg bench --modes bare,end-to-end --engine-streams 1`, the default (what `run`
picks for a file: OpenVINO's throughput streams and one request queued beside them), and the default
with no request queued (``QUEUED_WITH_STREAMS`` set to 0 in that bench process only), ``--repeats`` times,
so the settings meet the same load. Prints a Markdown table and writes every report with ``--json``.

    python benchmarks/engine_streams.py --models DIR [--video clip.mp4] [--frames 150] [--repeats 2] [--json runs.json]

DIR holds NAME.onnx and NAME-int8.onnx as `benchmarks/cpu_rows.py` makes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROWS = [  # (model, input short side, precision, frames divisor: heavy models get fewer frames)
    ("lraspp_mobilenet_v3_large", 360, "bf16", 1),
    ("lraspp_mobilenet_v3_large", 360, "fp32", 1),
    ("lraspp_mobilenet_v3_large", 360, "int8", 1),
    ("deeplabv3_mobilenet_v3_large", 360, "bf16", 2),
    ("deeplabv3_mobilenet_v3_large", 360, "int8", 2),
    ("fcn_resnet50", 520, "bf16", 10),
]


# the CLI with OpenVINO's queued requests set first: the same bench, only that constant differs
WITH_QUEUED = (
    "import sys; import streamseg.backends.openvino as ov; ov.QUEUED_WITH_STREAMS = int(sys.argv.pop(1)); "
    "from streamseg.cli import entry; sys.argv[0] = 'streamseg'; entry()"
)
SETTINGS = ((1, 0), (None, 1), (None, 0))  # (--engine-streams, queued): one stream, the default, none queued


def bench(model: Path, size: int, precision: str, frames: int, streams: int | None, queued: int, video: str) -> dict:
    args = ["--modes", "bare,end-to-end", "--frames", str(frames), "--size", str(size), "--backend", "openvino"]
    if precision == "bf16":
        args += ["--precision", "bf16"]
    if streams is not None:
        args += ["--engine-streams", str(streams)]
    proc = subprocess.run(
        [sys.executable, "-c", WITH_QUEUED, str(queued), "bench", video, "-m", str(model), *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"bench failed for {model} {precision}: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument(
        "--video", default=str(Path(os.environ.get("STREAMSEG_MEDIA", "../shared/media")) / "car-detection.mp4")
    )
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", help="Rows to run, e.g. lraspp_mobilenet_v3_large:bf16.")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wanted = set(args.only.split(",")) if args.only else None
    reports = []
    print(
        "| model (input) | precision | streams | queued | bare fps | e2e fps | e2e/bare | CPU ms/frame e2e "
        "| infer p50 ms |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, size, precision, divisor in ROWS:
        if wanted and f"{name}:{precision}" not in wanted:
            continue
        model = args.models / (f"{name}-int8.onnx" if precision == "int8" else f"{name}.onnx")
        if not model.exists():
            print(f"| {name} | {precision} | skipped: no {model.name} |", flush=True)
            continue
        for _ in range(args.repeats):
            for streams, queued in SETTINGS:
                report = bench(model, size, precision, max(4, args.frames // divisor), streams, queued, args.video)
                report["row"] = {"model": name, "precision": precision, "streams_asked": streams, "queued": queued}
                reports.append(report)
                bare, e2e = report["bare"], report["end_to_end"]
                print(
                    f"| {name} ({'x'.join(map(str, report['input_size']))}) | {precision} | {bare['streams']} "
                    f"| {bare.get('queued', 0)} | {bare['fps']:.1f} | {e2e['fps']:.1f} "
                    f"| {report['ratios']['end_to_end/bare']:.2f} "
                    f"| {e2e['process_cpu_ms']:.1f} | {e2e['stages']['infer']['p50_ms']:.1f} |",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps({"rows": reports}, indent=1))


if __name__ == "__main__":
    main()
