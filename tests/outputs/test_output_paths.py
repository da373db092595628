"""Outputs never overwrite inputs or each other: refused before anything opens, the input left byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamseg import Pipeline
from streamseg.errors import SinkError
from streamseg.outputs.paths import OutputPath, check_output_paths
from tests.support.cli import assert_one_line_error, run_cli
from tests.support.videos import make_video


@pytest.fixture
def clip(tmp_path) -> Path:
    return make_video(tmp_path / "clip.mp4", width=64, height=48, frames=4, fps=10)


def refused(tmp_path, source: Path, duc_onnx, *args: str, fragments: tuple[str, ...]) -> None:
    before = source.read_bytes()
    proc = run_cli("run", str(source), "--model", str(duc_onnx), *args, timeout=120)
    assert_one_line_error(proc, *fragments)
    assert source.read_bytes() == before  # byte for byte


def test_output_equal_to_the_input_is_refused(tmp_path, clip, duc_onnx):
    refused(tmp_path, clip, duc_onnx, "-o", str(clip), fragments=(f"-o {clip}", "overwrite the input", str(clip)))


def test_output_that_is_a_symlink_to_the_input_is_refused(tmp_path, clip, duc_onnx):
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    refused(tmp_path, clip, duc_onnx, "-o", str(link), fragments=(str(link), "overwrite the input"))


def refused_in_process(source: Path, message: str, **options) -> None:
    """The Python API refuses too, before the model loads (the model path here does not exist)."""
    before = source.read_bytes()
    with pytest.raises(SinkError, match=message):
        Pipeline(source, model=source.parent / "no-such-model.onnx", **options).start()
    assert source.read_bytes() == before


def test_input_given_through_a_symlink_or_a_hard_link_is_protected(tmp_path, clip):
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    refused_in_process(link, f"-o {clip} would overwrite the input {link}", outputs=[str(clip)])
    hard = tmp_path / "hard.mp4"
    os.link(clip, hard)
    refused_in_process(clip, f"-o {hard} would overwrite the input {clip}", outputs=[str(hard)])


def test_relative_and_absolute_spellings_are_the_same_file(tmp_path, clip, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused_in_process(Path("clip.mp4"), "overwrite the input", outputs=[str(tmp_path / "sub" / ".." / "clip.mp4")])


def test_label_maps_named_like_the_input_are_refused(tmp_path, duc_onnx):
    frame = make_video(tmp_path / "000000.png", width=64, height=48, frames=1, codec="png", pix_fmt="rgb24")
    refused_in_process(frame, "--labels-out .* would overwrite the input .*000000.png", labels_out=str(tmp_path))
    # a labels folder that merely holds the input is fine: nothing there is overwritten
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=2, fps=10)
    Pipeline(clip, duc_onnx, labels_out=str(tmp_path)).run()
    assert (tmp_path / "000001.png").exists()


def test_outputs_that_collide_are_refused_naming_both(tmp_path, clip):
    out, labels = tmp_path / "out.mp4", tmp_path / "labels"
    refused_in_process(clip, f"outputs collide: -o {out} and --summary {out}", outputs=[str(out)], summary=str(out))
    refused_in_process(clip, "outputs collide", outputs=[str(out), str(out)])
    refused_in_process(
        clip,
        "outputs collide: -o .* and --labels-out",
        labels_out=str(labels),
        labels_format="npz",
        outputs=[str(labels / "labels.npz")],
    )
    refused_in_process(clip, "outputs collide", labels_out=str(labels), summary=str(labels / "000007.png"))
    assert not out.exists() and not labels.exists()  # refused before anything opened


def test_size_capped_recording_must_not_match_the_input(tmp_path, clip):
    # an older segment fed back as the input: the loop recorder would delete it as its oldest
    old = tmp_path / "20250101-120000.mp4"
    clip.rename(old)
    refused_in_process(
        old,
        f"may delete the input {old}",
        outputs=[str(tmp_path / "%Y%m%d-%H%M%S.mp4")],
        encoder={"segment_seconds": 60, "keep_gigabytes": 1},
    )
    # without a size cap it only ever writes new names: nothing to refuse
    from streamseg.config import RunConfig
    from streamseg.outputs.paths import check_run_outputs

    check_run_outputs(
        str(old),
        RunConfig.build({"outputs": [str(tmp_path / "%Y%m%d-%H%M%S.mp4")], "encoder": {"segment_seconds": 60}}),
    )


def test_check_output_paths_skips_network_inputs_and_streams(tmp_path):
    check_output_paths(["rtsp://127.0.0.1:8554/cam"], [OutputPath("-o", str(tmp_path / "a.mp4"))])
    with pytest.raises(SinkError, match="outputs collide"):
        check_output_paths(
            [], [OutputPath("-o", str(tmp_path / "a.mp4")), OutputPath("-o", str(tmp_path / "x" / ".." / "a.mp4"))]
        )


def test_file_protocol_spellings_of_the_input_are_refused(tmp_path, clip, duc_onnx, monkeypatch):
    """``-o file:in.mp4`` is FFmpeg's spelling of ``in.mp4``: it was written over the input, exit 0."""
    refused(tmp_path, clip, duc_onnx, "-o", f"file:{clip}", fragments=("overwrite the input", str(clip)))
    monkeypatch.chdir(tmp_path)
    refused_in_process(Path("clip.mp4"), "overwrite the input", outputs=["file:clip.mp4"])
    refused_in_process(Path("clip.mp4"), "overwrite the input", outputs=["file:./sub/../clip.mp4"])
    refused_in_process(Path("clip.mp4"), "overwrite the input", outputs=[f"file:{tmp_path}/clip.mp4"])
    refused_in_process(Path("clip.mp4"), "overwrite the input", outputs=[f"file://{tmp_path}/clip.mp4"])
    # the input spelled file:… is the same file as the plain output path
    before = clip.read_bytes()
    with pytest.raises(SinkError, match="overwrite the input"):
        Pipeline("file:clip.mp4", model=tmp_path / "none.onnx", outputs=["clip.mp4"]).start()
    assert clip.read_bytes() == before


@pytest.mark.parametrize("output", ["md5:{clip}", "tee:{clip}", "crypto:{clip}", "pipe:1"])
def test_outputs_through_other_ffmpeg_protocols_are_refused(tmp_path, clip, duc_onnx, output):
    refused(tmp_path, clip, duc_onnx, "-o", output.format(clip=clip), fragments=("no output writes",))


def test_a_format_spec_in_a_template_is_refused_at_once(tmp_path, clip, duc_onnx):
    refused(
        tmp_path,
        clip,
        duc_onnx,
        "-o",
        str(tmp_path / "{name:>300000000}.mp4"),
        fragments=("no format specs",),
    )
