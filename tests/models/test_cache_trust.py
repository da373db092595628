"""Caches are trusted only when private: 0700 folders of this user, zoo files re-checked by sha256,
unique temp names."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from streamseg.backends.engine_cache import EngineCache
from streamseg.errors import ConfigError, ModelError
from streamseg.models import ZOO, ZooEntry, open_model
from streamseg.models.fetch import cached_path, fetch
from streamseg.models.spec import ModelSource

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB "model"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("STREAMSEG_CACHE", str(folder))
    return folder


@pytest.fixture
def tiny_entry(monkeypatch) -> ZooEntry:
    """A zoo entry pinned to PAYLOAD's sha256, added through the public ZOO dict for this test only."""
    base = ZOO["fcn_resnet50"]
    entry = ZooEntry(
        name="tiny_pinned",
        description="test entry",
        spec=base.spec,
        files={"fp32": ModelSource(url="http://127.0.0.1:9/tiny_pinned.onnx", sha256=SHA)},
    )
    monkeypatch.setitem(ZOO, entry.name, entry)
    return entry


@pytest.mark.slow
def test_world_writable_cache_is_refused_by_run_and_fetch(tmp_path, car_video):
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    cache.chmod(0o777)
    env = {**os.environ, "STREAMSEG_CACHE": str(cache), "https_proxy": "http://127.0.0.1:9"}
    for args in (
        ["run", str(car_video), "-o", str(tmp_path / "o.mp4"), "--model", "fcn_resnet50"],
        ["models", "fetch", "fcn_resnet50"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "streamseg", *args], capture_output=True, text=True, env=env, timeout=60, check=False
        )
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == (
            f"streamseg: error: cache folder {cache} is writable by others (mode 0777): "
            f"refusing to load from it (chmod 700 {cache})"
        )


def test_engine_cache_folder_is_created_0700_and_a_group_writable_one_refused(tmp_path):
    fresh = EngineCache(tmp_path / "new" / "engines").folder
    assert fresh.stat().st_mode & 0o777 == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o770)
    with pytest.raises(ConfigError, match="writable by others"):
        EngineCache(shared)


@pytest.mark.skipif(os.getuid() != 0, reason="giving a folder to another user needs root")
def test_cache_owned_by_another_user_is_refused(tmp_path):
    other = tmp_path / "theirs"
    other.mkdir(mode=0o700)
    os.chown(other, 65534, 65534)  # nobody
    with pytest.raises(ConfigError, match="belongs to uid 65534"):
        EngineCache(other)


def test_zoo_file_is_rechecked_against_its_pinned_sha256(cache, tiny_entry):
    path = cached_path(tiny_entry.files["fp32"])
    path.parent.mkdir(parents=True, mode=0o700)
    cache.chmod(0o700)
    path.write_bytes(PAYLOAD)
    assert open_model("tiny_pinned").path == path
    record = json.loads(path.with_name(path.name + ".sha256.json").read_text())
    assert record == {"size": len(PAYLOAD), "mtime_ns": path.stat().st_mtime_ns, "sha256": SHA}
    # the same size, one byte changed: the mtime moves, so the record no longer vouches for it
    time.sleep(0.01)
    tampered = bytearray(PAYLOAD)
    tampered[1000] ^= 0xFF
    path.write_bytes(bytes(tampered))
    with pytest.raises(ModelError, match="does not match its pinned sha256"):
        open_model("tiny_pinned")


class SlowFile(BaseHTTPRequestHandler):
    """Serves PAYLOAD in 16 slices with a pause between them, so two downloads overlap."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        step = len(PAYLOAD) // 16
        for start in range(0, len(PAYLOAD), step):
            self.wfile.write(PAYLOAD[start : start + step])
            self.wfile.flush()
            time.sleep(0.02)

    def log_message(self, *args) -> None:
        pass


def test_concurrent_downloads_use_unique_temporary_files(cache):
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowFile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    source = ModelSource(url=f"http://127.0.0.1:{server.server_address[1]}/m.onnx", sha256=SHA)
    results: list[object] = []

    def download() -> None:
        try:
            results.append(fetch(source))
        except Exception as err:  # noqa: BLE001 - the assertion below shows it
            results.append(err)

    try:
        threads = [threading.Thread(target=download) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    target = cached_path(source)
    assert results == [target] * 3
    assert target.read_bytes() == PAYLOAD
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.onnx", "m.onnx.sha256.json"]  # no .part left
    assert cache.stat().st_mode & 0o777 == 0o700 and target.parent.stat().st_mode & 0o777 == 0o700


def test_fp16_copy_is_keyed_by_the_full_sha256_of_its_source(tmp_path):
    pytest.importorskip("onnx")
    from streamseg.backends.onnx_precision import convert_to_fp16
    from streamseg.models.fetch import sha256_of
    from streamseg.models.spec import ModelSpec
    from tests.support.onnx_models import SPEC_21, conv_model

    spec = ModelSpec.from_yaml(SPEC_21)
    source = conv_model(tmp_path / "conv.onnx", 21)
    first = convert_to_fp16(source, spec, tmp_path / "onnx")
    assert first.name == f"conv-fp16-{sha256_of(source)}.onnx"
    assert (tmp_path / "onnx").stat().st_mode & 0o777 == 0o700
    conv_model(source, 21, seed=1)  # the same name, other weights: a new copy, never the stale one
    second = convert_to_fp16(source, spec, tmp_path / "onnx")
    assert second != first and second.name == f"conv-fp16-{sha256_of(source)}.onnx"
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted([first.name, second.name])  # no .part
