"""SIGKILL a recording at random moments; check the file plays up to its last fragment every time.

    .venv/bin/python benchmarks/crash_recording.py --model m.onnx [--input VIDEO] [--trials 5]
                                                   [--segment-seconds S] [--seed N] [-- run flags]

Each trial starts ``streamseg run INPUT -o out.mp4 --labels-out labels`` (or a
segmented recording), kills it with SIGKILL at a random moment, then counts the
video frames in the file's complete fragments from its boxes (tests/support/mp4_fragments.py)
and the frames FFmpeg decodes from the start. A trial passes when every frame of
every complete fragment decodes (segmented: every closed segment decodes whole, and
the open one up to its last fragment). It also times rewriting each killed file as a
normal faststart MP4 (what a clean close does), per MB and per second of video.
"""

from __future__ import annotations

import argparse
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from streamseg.outputs.files.recording import faststart  # noqa: E402
from tests.support.mp4_fragments import complete_fragment_frames, playable_frames  # noqa: E402


def trial(args, folder: Path, wait: float, extra: list[str]) -> dict:
    labels = folder / "labels"
    out = folder / ("rec/cam.mp4" if args.segment_seconds else "out.mp4")
    command = [
        sys.executable,
        "-m",
        "streamseg",
        "run",
        args.input,
        "-o",
        str(out),
        "--model",
        args.model,
        "--labels-out",
        str(labels),
        *extra,
    ]
    if args.segment_seconds:
        command += ["--segment-seconds", str(args.segment_seconds)]
    proc = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    time.sleep(wait)
    if proc.poll() is not None:
        raise SystemExit(f"the run ended after {wait:.1f} s, before the kill: pick an earlier --max-wait")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(list(labels.glob("*.png")))
    files = sorted(out.parent.glob("cam-*.mp4")) if args.segment_seconds else [out]
    files = [f for f in files if f.exists()] or [folder / "none.mp4"]
    closed, last = files[:-1], files[-1]
    if not last.exists():  # killed before the first frame was written
        last.write_bytes(b"")
    closed_ok = all(len(playable_frames(f)) == complete_or_whole(f) for f in closed)
    in_fragments, fragments = complete_fragment_frames(last) if last.stat().st_size else (0, 0)
    decoded = len(playable_frames(last)) if in_fragments else 0
    in_closed = sum(len(playable_frames(f)) for f in closed)
    rewrite = 0.0
    if in_fragments:  # time what a clean close would do to this file
        copy = folder / "copy.mp4"
        shutil.copy(last, copy)
        started = time.perf_counter()
        faststart(str(copy))
        rewrite = time.perf_counter() - started
    return {
        "wait_s": wait,
        "labels_written": written,
        "segments_closed": len(closed),
        "frames_in_closed_segments": in_closed,
        "fragments": fragments,
        "frames_in_fragments": in_fragments,
        "decoded": decoded,
        "lost": written - in_closed - decoded,
        "ok": closed_ok and decoded >= in_fragments,
        "mb": last.stat().st_size / 1e6,
        "rewrite_s": rewrite,
    }


def complete_or_whole(path: Path) -> int:
    """A closed segment is a normal MP4 (all its frames) or, if killed mid-rewrite, a fragmented one."""
    from mp4_fragments import is_fragmented

    if is_fragmented(path):
        return complete_fragment_frames(path)[0]
    import av

    with av.open(str(path)) as container:
        return container.streams.video[0].frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--input", default=str(ROOT.parent / "shared" / "media" / "car-detection.mp4"))
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--min-wait", type=float, default=4.0, help="earliest kill, seconds after start")
    parser.add_argument("--max-wait", type=float, default=40.0, help="latest kill, seconds after start")
    parser.add_argument("--segment-seconds", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("extra", nargs="*", help="more `streamseg run` flags, after --")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = []
    for n in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            result = trial(args, Path(tmp), rng.uniform(args.min_wait, args.max_wait), args.extra)
        results.append(result)
        print(
            f"trial {n + 1}: killed at {result['wait_s']:.1f} s, {result['labels_written']} label maps written; "
            f"closed segments {result['segments_closed']} ({result['frames_in_closed_segments']} frames); "
            f"last file {result['fragments']} complete fragments = {result['frames_in_fragments']} frames, "
            f"{result['decoded']} decoded; lost {result['lost']} frames; "
            f"faststart rewrite {result['rewrite_s'] * 1000:.0f} ms for {result['mb']:.1f} MB; "
            f"{'OK' if result['ok'] else 'FAILED'}",
            flush=True,
        )
    passed = sum(r["ok"] for r in results)
    timed = [r for r in results if r["rewrite_s"]]
    rate = sum(r["mb"] for r in timed) / max(1e-9, sum(r["rewrite_s"] for r in timed))
    print(
        f"{passed}/{len(results)} trials played up to their last fragment; lost at most "
        f"{max(r['lost'] for r in results)} frames; faststart rewrite {rate:.0f} MB/s"
    )
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
