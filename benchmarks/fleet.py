"""The fleet's figures (docs/fleet.md): cameras a node holds, time from a node's death to frames flowing again,
and the controller's own CPU and memory.

    python benchmarks/fleet.py --model lraspp.onnx --size 360 --kills 5 --json fleet.json

1. Capacity: what a node pipeline measures at its start (``streamseg.fleet.capacity``): the engine's median
   time per frame at the cameras' input size (16:9 frames, ``--size`` short side), and the cameras it then holds
   at ``--camera-fps``, with ``--interval 1`` and ``--interval N``.
2. Failover: a Ray head and a second node on 127.0.0.1, ``streamseg serve --ray`` with two looping file cameras,
   one per node (``--cameras-per-node 2``). Each round kills the second node (SIGKILL to its raylet and workers)
   and times the moved camera until its first label map on the head; then a new second node joins and the
   camera is sent there again (DELETE and POST: the node with the most room).
3. The controller (the ``serve`` process, Ray driver included): CPU time over the failover rounds, peak RSS.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from streamseg.bench.report import machine, now  # noqa: E402
from streamseg.config import RunConfig  # noqa: E402
from streamseg.fleet.capacity import cameras_held, engine_seconds  # noqa: E402
from tests.support.ray_nodes import RayNode  # noqa: E402
from tests.support.servers import free_port  # noqa: E402
from tests.support.videos import make_video  # noqa: E402


def capacity(model: str, size: int, fps: float, interval: int) -> dict:
    config = RunConfig.build({"model": model, "input_size": size})
    seconds = engine_seconds(config)
    return {
        "engine_ms": round(1000 * seconds, 1),
        "camera_fps": fps,
        "cameras_interval_1": cameras_held(seconds, fps, 1),
        f"cameras_interval_{interval}": cameras_held(seconds, fps, interval),
    }


def api(port: int, method: str = "GET", path: str = "/cameras", token: str = "", body: dict | None = None):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def wait(check, timeout: float, step: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except (OSError, urllib.error.URLError):
            found = None
        if found:
            return found
        time.sleep(step)
    raise TimeoutError("gave up waiting")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    return 0


def failover(model: str, size: int, kills: int, work: Path) -> dict:
    clip = make_video(work / "clip.mp4", width=640, height=360, frames=50, fps=10)
    labels = work / "labels"
    config = dict(
        model=model,
        input_size=size,
        labels_out=str(labels / "{name}"),
        sources=[{"uri": str(clip), "name": n, "realtime": True, "loop": True} for n in ("one", "two")],
    )
    (work / "cams.yaml").write_text(yaml.safe_dump(config))
    port, api_port = free_port(), free_port()
    address = f"127.0.0.1:{port}"
    ray_dir = Path(tempfile.mkdtemp(prefix="ssfleet"))  # Ray's socket paths must stay short
    head = RayNode(work / "head.log", port=port, temp_dir=ray_dir)
    second = RayNode(work / "second-0.log", address=address)
    log = (work / "serve.log").open("w")
    serve = subprocess.Popen(
        [sys.executable, "-m", "streamseg", "serve", str(work / "cams.yaml"), "--ray", address,
         "--api-port", str(api_port), "--cameras-per-node", "2"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    times: list[float] = []
    try:
        wait(lambda: all(r["state"] == "running" for r in api(api_port)) and len(api(api_port)) == 2, 300, 0.5)
        token = Path((work / "serve.log").read_text().split("API token in ")[1].split()[0]).read_text().strip()
        head_id = next(n["node"] for n in api(api_port, path="/nodes") if n["head"])
        cpu_start, wall_start = cpu_seconds(serve.pid), time.monotonic()
        for round_ in range(kills):
            moving = next(r for r in api(api_port) if r["node"] != head_id)
            name = moving["name"]
            before = set(labels.glob(f"{name}*"))
            killed = time.monotonic()
            second.kill()
            wait(lambda n=name, b=before: any(any(f.glob("*.png")) for f in set(labels.glob(f"{n}*")) - b), 120, 0.05)
            times.append(time.monotonic() - killed)
            print(f"round {round_ + 1}: {name} writing on the head {times[-1]:.2f} s after the kill", flush=True)
            if round_ + 1 == kills:
                break
            second = RayNode(work / f"second-{round_ + 1}.log", address=address)
            wait(lambda: sum(1 for n in api(api_port, path="/nodes") if n["state"] == "ready") == 2, 300, 0.5)
            api(api_port, "DELETE", f"/cameras/{name}", token)
            placed = api(api_port, "POST", "/cameras", token, {"uri": str(clip), "name": name, "realtime": True,
                                                                "loop": True})  # fmt: skip
            assert placed["node"] != head_id, placed
            wait(lambda n=name: any(r["name"] == n and r["state"] == "running" for r in api(api_port)), 120, 0.2)
        wall = time.monotonic() - wall_start
        cpu = cpu_seconds(serve.pid) - cpu_start
        rss = peak_rss(serve.pid)
        serve.send_signal(2)
        code = serve.wait(timeout=120)
    finally:
        if serve.poll() is None:
            serve.kill()
        log.close()
        second.stop()
        head.stop()
        shutil.rmtree(ray_dir, ignore_errors=True)
    return {
        "kills": len(times),
        "to_frames_s": [round(t, 2) for t in times],
        "p50_s": round(statistics.median(times), 2),
        "max_s": round(max(times), 2),
        "controller_cpu_percent": round(100 * cpu / wall, 1),
        "controller_peak_rss_mb": round(rss / 1e6, 1),
        "serve_exit_code": code,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="ONNX file (LR-ASPP for the documented figures)")
    parser.add_argument("--size", type=int, default=360)
    parser.add_argument("--camera-fps", type=float, default=25.0)
    parser.add_argument("--interval", type=int, default=4)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report: dict = {"date": now(), "machine": machine()}
    if not args.skip_capacity:
        report["capacity"] = capacity(args.model, args.size, args.camera_fps, args.interval)
        print(json.dumps(report["capacity"]), flush=True)
    work = Path(tempfile.mkdtemp(prefix="fleet-bench"))
    print(f"working in {work} (label maps, logs)", flush=True)
    report["failover"] = failover(args.model, args.size, args.kills, work)
    report["machine_after"] = {"load_average": machine()["load_average"]}
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
