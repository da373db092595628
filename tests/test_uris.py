"""One scheme table, in and out: which class reads or writes a URI, and which URIs are files on this machine."""

from __future__ import annotations

from urllib.parse import quote

import av
import numpy as np
import pytest

from streamseg.errors import ConfigError
from streamseg.sources import is_live, open_source
from streamseg.uris import SCHEMES, is_local_path, is_stream_output, local_path, network_schemes, output_kind, scheme_of
from tests.support.cli import assert_one_line_error, run_segment
from tests.support.videos import make_video


@pytest.mark.parametrize(
    ("uri", "scheme", "reads", "writes", "local"),
    [
        ("clip.mp4", "", "file", "file", True),
        ("dir/a:b.mp4", "", "file", "file", True),  # a colon after the first slash is part of the path
        ("file:///tmp/clip.mp4", "file", "file", "file", True),
        ("FILE:clip.mp4", "file", "file", "file", True),
        ("/dev/video2", "v4l2", "device", None, True),
        ("rtsp://cam/x", "rtsp", "live", "stream", False),
        ("RTMPS://h/live/x", "rtmps", "live", "stream", False),
        ("udp://127.0.0.1:5000", "udp", "live", "stream", False),
        ("https://h/index.m3u8", "https", "live", None, False),
        ("srt://h:9000", "srt", "live", None, False),
        ("hls:out/stream", "hls", None, "hls", False),
        ("gopher://h/x", "gopher", None, None, False),  # not in the table: read and written by nothing
        ("md5:clip.mp4", "md5", None, None, False),  # FFmpeg protocols that would write through to a file
        ("tee:clip.mp4", "tee", None, None, False),
        ("pipe:1", "pipe", None, None, False),
        ("C:clip.mp4", "", "file", "file", True),  # a drive letter is part of the path
    ],
)
def test_one_row_says_how_a_uri_is_read_and_written(uri, scheme, reads, writes, local):
    row = scheme_of(uri)
    assert (row.name, row.reads, row.writes, row.local) == (scheme, reads, writes, local)
    assert is_local_path(uri) == local
    assert is_stream_output(uri) == (writes in ("stream", "hls"))


def test_every_row_reads_or_writes_something():
    assert all(row.reads or row.writes for row in SCHEMES.values())


def test_outputs_and_network_sources_read_the_table():
    assert output_kind("file:out.mp4") == "file" and output_kind("hls:out") == "hls"
    with pytest.raises(ConfigError, match="no output writes md5: URIs"):
        output_kind("md5:out.mp4")
    assert set(network_schemes()) == {"rtsp", "rtsps", "rtmp", "rtmps", "udp", "http", "https", "srt", "tcp"}


def test_file_uris_name_local_paths():
    assert local_path("file:///tmp/a%20b.mp4") == "/tmp/a b.mp4"
    assert local_path("file://localhost/tmp/x.mp4") == "/tmp/x.mp4"
    assert local_path("file:/tmp/x.mp4") == "/tmp/x.mp4"
    assert local_path("file:x.mp4") == "x.mp4"  # FFmpeg's spelling, relative
    assert local_path("rtsp://cam/x") == "rtsp://cam/x"
    assert local_path("file:md5:x.mp4") == "./md5:x.mp4"  # the file named md5:x.mp4, not FFmpeg's md5 protocol
    with pytest.raises(ConfigError, match="not on nas"):
        local_path("file://nas/share/x.mp4")


def test_a_file_uri_decodes_the_same_frames_as_its_path(tmp_path):
    clip = make_video(tmp_path / "a clip.mp4", width=64, height=48, frames=5)
    uri = "file://" + quote(str(clip))
    assert not is_live(uri)
    by_path, by_uri = open_source(str(clip)), open_source(uri)
    try:
        pairs = list(zip(by_path.frames(), by_uri.frames(), strict=True))
    finally:
        by_path.close()
        by_uri.close()
    assert len(pairs) == 5
    assert all(a.pts == b.pts and np.array_equal(a.image, b.image) for a, b in pairs)


@pytest.mark.slow
def test_file_uris_in_and_out_of_a_run(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=3)
    out = tmp_path / "out.mp4"
    run_segment(f"file://{clip}", duc_onnx, "-o", f"file:{out}", "--no-progress", check=True)
    with av.open(str(out)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    refused = run_segment(clip, duc_onnx, "-o", f"file://{clip}")
    assert_one_line_error(refused, "would overwrite the input", str(clip))


@pytest.mark.slow
def test_a_scheme_nothing_reads_or_writes_is_one_clear_error(duc_onnx, tmp_path):
    clip = make_video(tmp_path / "clip.mp4", width=64, height=48, frames=2)
    assert_one_line_error(
        run_segment("gopher://h/x", duc_onnx, "--summary", str(tmp_path / "s.csv")), "no source reads gopher:// URIs"
    )
    assert_one_line_error(run_segment(clip, duc_onnx, "-o", "srt://127.0.0.1:9/x"), "no output writes srt:// URIs")
