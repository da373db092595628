"""The per-machine table of docs/benchmarks.md: three zoo models x FP32, BF16 and INT8, one `bench` run per row.

Each row is one `streamseg bench --json` run (bare, end-to-end, naive and same-engine on the same frames), so
its ratios come from one run under one load. FP32 rows run on ONNX Runtime; BF16 on OpenVINO (where the CPU
computes it); INT8 rows run the Q/DQ file from `streamseg quantize` on what `--backend auto` picks for it
(OpenVINO); `--engines both` adds the engines auto passes over. Models with random weights: speed does not
depend on them.

    python benchmarks/cpu_rows.py --models DIR [--frames 20] [--json rows.json] [--engines both]

DIR holds NAME.onnx and NAME-int8.onnx for each model (made when missing: `streamseg models export NAME
--weights none` and `streamseg quantize ... --frames 16`; FCN's quantize takes minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from streamseg.bench.report import machine

ROWS = (  # zoo model, short side
    ("lraspp_mobilenet_v3_large", 360),
    ("deeplabv3_mobilenet_v3_large", 360),
    ("fcn_resnet50", 520),
)
PRECISIONS = {  # row -> (file suffix, bench flags)
    "fp32": ("", ["--backend", "onnxruntime"]),
    "bf16": ("", ["--backend", "openvino", "--precision", "bf16"]),
    "int8": ("-int8", ["--backend", "auto"]),
}
# the engines `auto` passes over, to show its choice was right on this CPU (--engines both)
OTHER_ENGINE = {
    "fp32-openvino": ("", ["--backend", "openvino"]),
    "int8-onnxruntime": ("-int8", ["--backend", "onnxruntime"]),
}


def streamseg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamseg", *args], capture_output=True, text=True, check=False)


def model_files(folder: Path, name: str, size: int, video: str) -> Path:
    fp32, int8 = folder / f"{name}.onnx", folder / f"{name}-int8.onnx"
    if not fp32.exists():
        streamseg("models", "export", name, "--weights", "none", "-o", str(fp32)).check_returncode()
    if not int8.exists():
        streamseg(
            "quantize", "-m", str(fp32), "--calib", video, "--frames", "16", "--size", str(size), "-o", str(int8)
        ).check_returncode()
    return fp32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True, help="Folder of NAME.onnx and NAME-int8.onnx.")
    parser.add_argument(
        "--video", default=str(Path(os.environ.get("STREAMSEG_MEDIA", "../shared/media")) / "car-detection.mp4")
    )
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--only", help="Rows to run, e.g. lraspp_mobilenet_v3_large:bf16,fcn_resnet50:int8.")
    parser.add_argument("--json", type=Path, help="Write every row's bench report here.")
    parser.add_argument(
        "--engines",
        choices=("auto", "both"),
        default="auto",
        help="both: also FP32 on OpenVINO and INT8 on ONNX Runtime, the engines auto passes over.",
    )
    args = parser.parse_args()
    args.models.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only.split(",")) if args.only else None
    # --only may name any row; otherwise the other engines' rows run with --engines both
    precisions = PRECISIONS if wanted is None and args.engines == "auto" else {**PRECISIONS, **OTHER_ENGINE}
    rows = []
    print(
        "| model | precision | engine | bare fps | e2e fps | naive fps | same-engine fps | e2e/bare | e2e/naive "
        "| e2e/same-engine | load |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, size in ROWS:
        if wanted is not None and not any(row.startswith(f"{name}:") for row in wanted):
            continue  # not even its files: FCN's quantize takes minutes
        fp32 = model_files(args.models, name, size, args.video)
        for precision, (suffix, flags) in precisions.items():
            if wanted is not None and f"{name}:{precision}" not in wanted:
                continue
            model = fp32.with_name(f"{name}{suffix}.onnx")
            before = os.getloadavg()[0]
            proc = streamseg(
                "bench",
                args.video,
                "-m",
                str(model),
                "--size",
                str(size),
                "--frames",
                str(args.frames),
                "--json",
                *flags,
            )
            after = os.getloadavg()[0]
            if proc.returncode != 0:
                print(f"| {name} | {precision} | failed: {proc.stderr.strip().splitlines()[-1]} |")
                continue
            report = json.loads(proc.stdout)
            report["row"] = {"model": name, "precision": precision, "load": [before, after]}
            rows.append(report)
            r = report["ratios"]
            print(
                f"| {name} ({size}) | {precision} | {report['bare']['engine']} | {report['bare_fps']:.3g} "
                f"| {report['end_to_end_fps']:.3g} | {report['naive_fps'] or 0:.3g} | {report['same_engine_fps']:.3g} "
                f"| {r['end_to_end/bare']:.2f} | {r['end_to_end/naive'] or 0:.1f} | {r['end_to_end/same_engine']:.2f} "
                f"| {before:.1f} → {after:.1f} |",
                flush=True,
            )
    print(f"\n{machine()['cpu']}, ISA {', '.join(machine()['isa'] or [])}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
