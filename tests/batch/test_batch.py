"""``streamseg batch``: real generated clips (one corrupt, one truncated), real subprocesses, a real Ray cluster."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from streamseg.batch.inputs import collect_inputs
from streamseg.batch.job import temp_name
from streamseg.batch.manifest import Manifest, input_identity
from streamseg.errors import ConfigError, SourceError
from tests.support.cli import run_cli
from tests.support.ray_nodes import RayNode
from tests.support.servers import free_port
from tests.support.videos import make_video, read_video

MANIFEST = "streamseg-batch.jsonl"
GOOD = {"a.mp4": 6, "sub/b.mp4": 8, "sub/deeper/c.mkv": 5}  # key -> frames
HAS_RAY = importlib.util.find_spec("ray") is not None


def faststart_copy(source: Path, target: Path) -> Path:
    """Remux with the index first, as cameras and web uploads do: cut short, it still opens and decodes."""
    with av.open(str(source)) as src, av.open(str(target), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return target


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    """Three good clips (one two folders down), random bytes named .mp4, and an MP4 cut to 60 % of its size."""
    root = tmp_path_factory.mktemp("clips")
    folder = root / "videos"
    (folder / "sub" / "deeper").mkdir(parents=True)
    for key, frames in GOOD.items():
        make_video(folder / key, width=64, height=48, frames=frames, fps=10)
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes())
    whole = faststart_copy(make_video(root / "whole.mp4", width=64, height=48, frames=12), root / "whole-fs.mp4")
    data = whole.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) * 6 // 10])
    (folder / "notes.txt").write_text("not a video: a folder search skips it")
    return folder


@pytest.fixture(scope="module")
def first_run(clips, duc_onnx, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("batch") / "out"
    proc = run_cli(
        "batch",
        str(clips),
        "-o",
        str(out),
        "--model",
        str(duc_onnx),
        "--labels-out",
        "--summary",
        "--no-progress",
        "--report",
        str(out.parent / "report.json"),
    )
    return out, proc


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


def latest(out: Path) -> dict[str, dict]:
    return {record["key"]: record for record in manifest(out)}


def label_maps(folder: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def source_times(path: Path) -> list:
    """Each decodable frame's time in seconds, up to where a cut file stops decoding."""
    times = []
    with av.open(str(path)) as container:
        try:
            for frame in container.decode(video=0):
                times.append(frame.pts * frame.time_base)
        except av.FFmpegError:
            pass
    return times


def leftovers(out: Path) -> list[Path]:
    """Temporary outputs: what a crash or an abort must not leave behind."""
    return [p for p in out.rglob(".*") if ".part" in p.name]


# -- inputs ----------------------------------------------------------------------------------------------------
def test_inputs_mirror_paths_from_folders_globs_and_lists(tmp_path, monkeypatch):
    for name in (
        "in/x.mp4",
        "in/deep/y.MOV",
        "in/.hidden.mp4",
        "in/deep/.z.part.mp4",
        "in/readme.md",
        "other/w.mkv",
        "in/out/old.mp4",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# one per line, relative to this file\nother/w.mkv\n\n")
    monkeypatch.chdir(tmp_path)
    found = collect_inputs(["in", str(tmp_path / "in/*.mp4"), "@list.txt"], tmp_path / "in" / "out")
    assert {(p.path.relative_to(tmp_path).as_posix(), p.key) for p in found} == {
        ("in/x.mp4", "x.mp4"),
        ("in/deep/y.MOV", "deep/y.MOV"),
        ("other/w.mkv", "w.mkv"),
    }
    (tmp_path / "in/deep/x.mp4").write_bytes(b"")
    first, second = collect_inputs(["in/x.mp4", "in/deep/x.mp4"], tmp_path / "o")
    assert first.problem is None  # the second fails alone, and says how to keep their outputs apart
    assert second.problem == (
        f"its outputs (x.*) would be those of {tmp_path / 'in/x.mp4'}: give their common parent folder instead, "
        "so their outputs keep their folders apart"
    )
    with pytest.raises(SourceError, match="input not found: nope.mp4"):
        collect_inputs(["nope.mp4"], tmp_path / "o")


def test_inputs_leave_out_links_into_outdir_keep_broken_links_and_mark_name_clashes(tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    (out / "old").mkdir(parents=True)
    folder.mkdir()
    (out / "old" / "result.mp4").write_bytes(b"an output")
    for name in ("x.mp4", "x.mkv", "y.mp4"):
        (folder / name).write_bytes(b"")
    (folder / "into-out.mp4").symlink_to(out / "old" / "result.mp4")  # OUTDIR is never read, not even this way
    (folder / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")  # dangling: kept, to fail as one video
    found = {item.key: item for item in collect_inputs([str(folder)], out)}
    assert sorted(found) == ["gone.mp4", "x.mkv", "x.mp4", "y.mp4"]
    assert [key for key, item in found.items() if item.problem] == ["x.mp4"]  # sorted: x.mkv came first
    assert found["x.mp4"].problem == (
        f"its outputs (x.*) would be those of {folder / 'x.mkv'}: two videos with one name in one folder: "
        "rename one of them"
    )
    with pytest.raises(
        ConfigError, match=r"no videos found in .* outside OUTDIR: every one found \(1\) lies in .*give -o a folder"
    ):
        collect_inputs([str(out)], out)  # -o equal to the input folder (here with one video in a subfolder)


def test_a_tampered_manifest_line_means_not_done(tmp_path):
    video, out = tmp_path / "a.mp4", tmp_path / "out"
    video.write_bytes(b"x" * 1000)
    out.mkdir()
    (out / "a.mp4").write_bytes(b"segmented")
    outside = tmp_path / "elsewhere.mp4"
    outside.write_bytes(b"not this batch's")
    base = {"key": "a.mp4", "status": "done", **input_identity(video, False), "model_sha256": "m", "options": {}}
    args = ("a.mp4", input_identity(video, False), "m", {}, out)
    for outputs, done in (
        ({"video": "a.mp4"}, True),
        (["a.mp4"], False),  # a list, not a mapping: exit 70 before
        ({"video": str(outside)}, False),  # present, but outside OUTDIR: counted as done before
        ({"video": "../elsewhere.mp4"}, False),
        ({"video": 3}, False),
    ):
        Manifest(out).append({**base, "outputs": outputs})
        assert Manifest(out).is_done(*args) is done, outputs
        assert Manifest(out).is_done(*args, outputs={"video": "a.mp4"}) is done, outputs


def test_manifest_skips_only_unchanged_inputs_options_and_present_outputs(tmp_path):
    video, out = tmp_path / "a.mp4", tmp_path / "out"
    video.write_bytes(b"x" * 1000)
    (out / "a.mp4").parent.mkdir(parents=True)
    (out / "a.mp4").write_bytes(b"segmented")
    options = {"input_size": 128, "alpha": 0.5}
    manifest = Manifest(out)
    manifest.append(
        {
            "key": "a.mp4",
            "status": "done",
            **input_identity(video, verify=False),
            "model_sha256": "m1",
            "options": options,
            "outputs": {"video": "a.mp4"},
        }
    )
    reread = Manifest(out)  # from the file, as a re-run reads it
    assert reread.is_done("a.mp4", input_identity(video, False), "m1", options, out)
    assert not reread.is_done("a.mp4", input_identity(video, False), "m2", options, out)  # another model
    assert not reread.is_done("a.mp4", input_identity(video, False), "m1", {**options, "alpha": 0.3}, out)
    assert not reread.is_done("a.mp4", input_identity(video, True), "m1", options, out)  # no hash recorded yet
    os.utime(video, ns=(1, 1))  # touched, same bytes: redone by size+mtime, skipped by --verify's sha256
    assert not reread.is_done("a.mp4", input_identity(video, False), "m1", options, out)
    reread.append(
        {
            "key": "a.mp4",
            "status": "done",
            **input_identity(video, verify=True),
            "model_sha256": "m1",
            "options": options,
            "outputs": {"video": "a.mp4"},
        }
    )
    os.utime(video, ns=(2, 2))
    assert Manifest(out).is_done("a.mp4", input_identity(video, True), "m1", options, out)
    video.write_bytes(b"y" * 1000)  # same size, other content
    assert not Manifest(out).is_done("a.mp4", input_identity(video, True), "m1", options, out)
    with open(out / MANIFEST, "a") as file:
        file.write('{"key": "a.mp4", "status": "fail')  # a torn last line: skipped on reading
    (out / "a.mp4").unlink()  # the output went away: redone
    assert not Manifest(out).is_done("a.mp4", input_identity(video, True), "m1", options, out)
    assert Manifest(out).latest["a.mp4"]["status"] == "done"


@pytest.mark.slow
def test_ray_missing_says_what_to_install(tmp_path):
    video = make_video(tmp_path / "a.mp4", width=64, height=48, frames=2)
    code = (
        "import sys; sys.modules['ray'] = None; from streamseg.cli import main; "
        f"sys.exit(main(['batch', {str(video)!r}, '-o', {str(tmp_path / 'out')!r}, '--model', 'x.onnx', "
        "'--ray', 'auto']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == 'streamseg: error: --ray needs the ray extra: pip install "streamseg[ray]"'


@pytest.mark.slow
def test_retries_transient_failures_not_unreadable_inputs(tmp_path, duc_onnx):
    """A write error may pass (a full disk, a network share): retried; random bytes stay unreadable: tried once."""
    (tmp_path / "in" / "cams").mkdir(parents=True)
    make_video(tmp_path / "in" / "cams" / "one.mp4", width=64, height=48, frames=2)
    (tmp_path / "in" / "corrupt.mp4").write_bytes(b"\x00" * 2000)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "cams").write_text("a file where the output folder should be")
    proc = run_cli(
        "batch",
        str(tmp_path / "in"),
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(duc_onnx),
        "--retries",
        "2",
        "--no-progress",
    )
    assert proc.returncode == 1
    assert proc.stderr.count("cams/one.mp4: FileExistsError") == 2 and "; retrying" in proc.stderr
    records = latest(tmp_path / "out")
    assert records["cams/one.mp4"]["status"] == "failed" and records["cams/one.mp4"]["attempts"] == 3
    assert records["corrupt.mp4"]["status"] == "failed" and records["corrupt.mp4"]["attempts"] == 1
    assert "0 succeeded, 0 skipped, 2 failed" in proc.stderr


# -- one machine -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_batch_isolates_failures_and_outputs_are_frame_exact(clips, first_run):
    out, proc = first_run
    assert proc.returncode == 1, proc.stderr
    assert "streamseg: batch: 3 succeeded, 0 skipped, 1 failed, 1 partial (of 5)" in proc.stderr
    records = latest(out)
    assert sorted(records) == sorted([*GOOD, "corrupt.mp4", "truncated.mp4"])
    assert records["corrupt.mp4"]["status"] == "failed"
    assert "is not a readable video" in records["corrupt.mp4"]["error"]
    truncated = records["truncated.mp4"]
    assert truncated["status"] == "partial" and 0 < truncated["frames"] < truncated["expected_frames"] == 12
    assert not (out / "corrupt.mp4").exists() and not (out / "corrupt.labels").exists()
    for key, frames in {**GOOD, "truncated.mp4": truncated["frames"]}.items():
        record = records[key]
        assert record["frames"] == frames and record["model_sha256"] and record["size"] > 0
        images, pts, tb, _ = read_video(out / key)
        assert len(images) == frames and images[0].shape == (48, 64, 3)
        assert [p * tb for p in pts] == source_times(clips / key)[:frames]
        stem = key.rsplit(".", 1)[0]
        assert len(label_maps(out / f"{stem}.labels")) == frames
        assert len((out / f"{stem}.summary.csv").read_text().splitlines()) == frames + 1
    assert leftovers(out) == []
    report = {row["key"]: row for row in json.loads((out.parent / "report.json").read_text())}
    assert {k: (r["status"], r["frames"]) for k, r in report.items()} == {
        k: (r["status"], r["frames"]) for k, r in records.items()
    }


@pytest.mark.slow
def test_report_plots_class_areas_of_the_whole_batch(first_run):
    pytest.importorskip("matplotlib", reason="needs the plots extra (matplotlib)")
    out = first_run[0]
    proc = run_cli("report", str(out), check=True)
    finished = [r for r in latest(out).values() if r["status"] != "failed"]  # a failed video has no summary
    assert f"({len(finished)} videos, {sum(r['frames'] for r in finished)} frames," in proc.stdout
    rows = (out / "batch-classes.csv").read_text().splitlines()
    assert rows[0].startswith("video,frames,") and len(rows) == 5
    for row in rows[1:]:
        video, frames, *fractions = row.split(",")
        summary = np.loadtxt(out / (video.rsplit(".", 1)[0] + ".summary.csv"), delimiter=",", skiprows=1, ndmin=2)
        assert int(frames) == len(summary)
        assert sum(map(float, fractions)) == pytest.approx(1.0, abs=1e-4)  # every class seen is a column
    assert Image.open(out / "batch-classes.png").size[0] == 1000


@pytest.mark.slow
def test_rerun_skips_done_videos_and_an_option_change_redoes_them(first_run, clips, duc_onnx, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    lines = len(manifest(out))
    stamps = {key: (out / key).stat().st_mtime_ns for key in GOOD}

    rerun = run_cli(
        "batch", str(clips), "-o", str(out), "--model", str(duc_onnx), "--labels-out", "--summary", "--no-progress"
    )
    assert rerun.returncode == 1
    assert "3 of 5 videos done before, skipped" in rerun.stderr
    assert "3 succeeded" not in rerun.stderr and "0 succeeded, 3 skipped, 1 failed, 1 partial" in rerun.stderr
    new = manifest(out)[lines:]
    assert sorted(r["key"] for r in new) == ["corrupt.mp4", "truncated.mp4"]  # no inference for the done ones
    assert {key: (out / key).stat().st_mtime_ns for key in GOOD} == stamps

    labels_before = {key: label_maps(out / (key.rsplit(".", 1)[0] + ".labels")) for key in GOOD}
    changed = run_cli(
        "batch",
        str(clips),
        "-o",
        str(out),
        "--model",
        str(duc_onnx),
        "--labels-out",
        "--summary",
        "--alpha",
        "0.2",
        "--workers",
        "2",
        "--no-progress",
    )
    assert changed.returncode == 1
    redone = {r["key"]: r for r in manifest(out)[lines + 2 :]}
    assert sorted(redone) == sorted([*GOOD, "corrupt.mp4", "truncated.mp4"])
    for key, frames in GOOD.items():
        assert redone[key]["status"] == "done" and redone[key]["options"]["alpha"] == 0.2
        assert (out / key).stat().st_mtime_ns != stamps[key]
        labels = label_maps(out / (key.rsplit(".", 1)[0] + ".labels"))  # alpha changes pictures, not labels
        assert len(labels) == frames and all(np.array_equal(a, b) for a, b in zip(labels, labels_before[key]))
    assert leftovers(out) == []


@pytest.mark.slow
@pytest.mark.timing
def test_ctrl_c_finishes_running_video_and_twice_aborts_it(duc_onnx, tmp_path):
    """The signals go in once the video to interrupt has started (its output file is open), not after a sleep.
    That video is long: even at 1000 frames/s (this model runs at about 20 on one core here) its 100 frames take
    10 times the 10 ms the test takes to see it start, so "mid-video" holds on any CPU; a slow one takes longer.
    (Not --realtime: a paced source drops frames on a busy core, and a whole output is part of the promise.)"""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    frames = {"clip0.mp4": 6, "clip1.mp4": 100, "clip2.mp4": 6, "clip3.mp4": 100}
    for name, count in frames.items():
        make_video(folder / name, width=64, height=48, frames=count, fps=10)
    command = [sys.executable, "-m", "streamseg", "batch", str(folder), "-o", str(out), "--model", str(duc_onnx)]
    command += ["--no-progress"]

    def start_and_signal(running: str, signals: int) -> subprocess.CompletedProcess:
        """Start the batch, send ``signals`` SIGINTs once video ``running`` has started, the second after the
        batch has answered the first."""
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = temp_name(out / running)  # opened when the video starts, renamed when it is done
        seen = []
        try:
            deadline = time.monotonic() + 120
            while not started.exists():
                assert proc.poll() is None and time.monotonic() < deadline, f"batch ended before {running} started"
                time.sleep(0.01)
            proc.send_signal(signal.SIGINT)
            if signals == 2:
                assert proc.stderr is not None
                while not (seen and "stopping: no new videos" in seen[-1]):
                    line = proc.stderr.readline()
                    assert line, f"batch ended without answering the first Ctrl-C: {''.join(seen)}"
                    seen.append(line)
                proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:  # the test failed: leave no batch running
                proc.kill()
                proc.wait()
        return subprocess.CompletedProcess(command, proc.returncode, stdout, "".join(seen) + stderr)

    def check_outputs() -> dict[str, dict]:
        records = latest(out)
        assert all(r["status"] == "done" for r in records.values())
        videos = sorted(p.name for p in out.glob("*.mp4"))
        assert videos == sorted(records)  # every output that looks done is done, and whole
        for name in videos:
            assert len(read_video(out / name)[0]) == frames[name]
        assert leftovers(out) == []
        return records

    once = start_and_signal("clip1.mp4", signals=1)
    assert once.returncode == 130, once.stderr
    assert "no new videos; running ones finish" in once.stderr and "left for a re-run" in once.stderr
    assert sorted(check_outputs()) == ["clip0.mp4", "clip1.mp4"]  # the running video finished, nothing new started

    twice = start_and_signal("clip3.mp4", signals=2)  # clip2 is done first; clip3 is aborted
    assert twice.returncode == 130, twice.stderr
    assert "aborting running videos" in twice.stderr and "clip3.mp4: aborted" in twice.stderr
    assert sorted(check_outputs()) == ["clip0.mp4", "clip1.mp4", "clip2.mp4"]  # the aborted one left nothing


# -- Ray -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    if not HAS_RAY:
        pytest.skip("needs the ray extra (pip install streamseg[ray])")
    root = tmp_path_factory.mktemp("ray", numbered=True)
    port = free_port()
    head = RayNode(root / "head.log", port=port, temp_dir=root / "t", cpus=2, object_store=200_000_000)
    yield f"127.0.0.1:{port}", root
    head.stop()


@pytest.mark.live
@pytest.mark.slow
def test_ray_gives_the_local_executors_label_maps(ray_cluster, clips, first_run, duc_onnx, tmp_path):
    address, _ = ray_cluster
    local, out = first_run[0], tmp_path / "ray-out"
    proc = run_cli(
        "batch",
        str(clips),
        "-o",
        str(out),
        "--model",
        str(duc_onnx),
        "--labels-out",
        "--summary",
        "--no-progress",
        "--ray",
        address,
        "--ray-cpus",
        "1",
    )
    assert proc.returncode == 1, proc.stderr
    assert "3 succeeded, 0 skipped, 1 failed, 1 partial (of 5)" in proc.stderr
    ours, theirs = latest(out), latest(local)
    assert {k: r["status"] for k, r in ours.items()} == {k: r["status"] for k, r in theirs.items()}
    for key, record in ours.items():
        if record["status"] == "failed":
            continue
        stem = key.rsplit(".", 1)[0]
        mine, reference = label_maps(out / f"{stem}.labels"), label_maps(local / f"{stem}.labels")
        assert len(mine) == len(reference) == record["frames"] > 0
        assert all(np.array_equal(a, b) for a, b in zip(mine, reference))
        assert len(read_video(out / key)[0]) == record["frames"]
    assert leftovers(out) == []


@pytest.mark.live
@pytest.mark.slow
def test_ray_refuses_local_outdir_on_two_nodes(ray_cluster, clips, duc_onnx, tmp_path):
    address, root = ray_cluster
    worker = RayNode(root / "worker.log", address=address)
    try:
        proc = run_cli(
            "batch",
            str(clips),
            "-o",
            str(tmp_path / "out"),
            "--model",
            str(duc_onnx),
            "--no-progress",
            "--ray",
            address,
        )
    finally:
        worker.stop()
    assert proc.returncode == 2
    assert "on a local filesystem" in proc.stderr and "the Ray cluster has 2 nodes" in proc.stderr
    assert not (tmp_path / "out" / MANIFEST).exists()


@pytest.mark.slow
def test_batch_edge_cases_fail_one_video_or_redo_it_never_exit_70(duc_onnx, tmp_path):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    make_video(folder / "x.mp4", width=64, height=48, frames=3)
    make_video(folder / "x.mkv", width=64, height=48, frames=3)
    (folder / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")

    def batch() -> subprocess.CompletedProcess:
        return run_cli("batch", str(folder), "-o", str(out), "--model", str(duc_onnx), "--labels-out", "--no-progress")

    first = batch()
    assert first.returncode == 1, first.stderr
    assert "done before" not in first.stderr  # the broken link is not "done before, skipped"
    rows = {line.split()[0]: line.split(None, 5)[1:] for line in first.stderr.splitlines() if line.startswith("  ")}
    assert rows["gone.mp4"][0] == "failed" and rows["gone.mp4"][4].startswith("broken symbolic link to")
    assert rows["x.mp4"][0] == "failed" and rows["x.mp4"][4].endswith("one name in one folder: rename one of them")
    assert len(read_video(out / "x.mkv")[0]) == 3 and len(list((out / "x.labels").glob("*.png"))) == 3
    done = latest(out)["x.mkv"]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    for tampered in ({**done, "outputs": ["x.mkv"]}, {**done, "outputs": {"video": str(outside)}}):
        with open(out / MANIFEST, "a") as file:
            file.write(json.dumps(tampered) + "\n")
        again = batch()
        assert again.returncode == 1 and "internal error" not in again.stderr, again.stderr
        assert "x.mkv: done (3 frames" in again.stderr  # redone, not skipped
        assert latest(out)["x.mkv"]["outputs"] == done["outputs"]
    same = run_cli("batch", str(out), "-o", str(out), "--model", str(duc_onnx), "--no-progress")
    assert same.returncode == 2 and "outside OUTDIR" in same.stderr.splitlines()[-1]
