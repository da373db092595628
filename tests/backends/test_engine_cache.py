"""Engine cache and build decisions, which need no GPU: keys, manifests, stale and corrupt engines.

TensorRT itself cannot run here; ``ensure_engine``'s decisions (reuse,
rebuild, refuse) are checked with a stand-in for the builder that returns
known bytes, and the real build is covered by ``test_gpu_tensorrt.py`` on a GPU.
"""

from __future__ import annotations

import json
import types

import pytest

from streamseg.backends import engine_cache, trt_build
from streamseg.backends.engine_cache import EngineCache, EngineKey, Profile, check_engine, manifest_path
from streamseg.errors import BackendError, ConfigError
from streamseg.models import ZOO

PROFILE = Profile((1, 3, 48, 48), (1, 3, 96, 171), (1, 3, 224, 224))


def key(**changes) -> EngineKey:
    base = dict(
        onnx_sha256="a" * 64,
        precision="fp16",
        profile=PROFILE,
        trt_module="tensorrt",
        trt_version="10.13.0",
        gpu_name="NVIDIA H100 80GB HBM3",
        compute_capability="9.0",
    )
    return EngineKey(**{**base, **changes})


def test_key_digest_changes_with_every_field():
    variants = [
        key(),
        key(onnx_sha256="b" * 64),
        key(precision="fp32"),
        key(trt_version="11.0.0"),
        key(trt_module="tensorrt_rtx"),
        key(gpu_name="NVIDIA A100"),
        key(compute_capability="8.0"),
        key(profile=Profile((1, 3, 48, 48), (1, 3, 96, 171), (2, 3, 224, 224))),
    ]
    assert len({k.digest() for k in variants}) == len(variants)
    assert EngineKey.from_dict(json.loads(json.dumps(key().as_dict()))) == key()


def test_store_then_lookup_reuses_the_engine(tmp_path):
    cache = EngineCache(tmp_path)
    engine = b"serialized engine \x00\x01" * 100
    path = cache.store(key(), "fcn", engine)
    found = cache.lookup(key(), "fcn")
    assert found.ok and found.path == path and path.read_bytes() == engine
    manifest = json.loads(manifest_path(path).read_text())
    assert manifest["key"]["gpu_name"] == "NVIDIA H100 80GB HBM3" and manifest["engine_bytes"] == len(engine)
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no partial files


def test_a_truncated_engine_is_corrupt_not_loaded(tmp_path):
    path = EngineCache(tmp_path).store(key(), "fcn", b"x" * 1000)
    path.write_bytes(b"x" * 500)
    found = check_engine(path, key())
    assert found.state == "corrupt" and "sha256" in found.reason


def test_an_engine_from_another_gpu_or_tensorrt_is_stale(tmp_path):
    path = EngineCache(tmp_path).store(key(), "fcn", b"engine")
    found = check_engine(path, key(gpu_name="NVIDIA L4", trt_version="10.9.0"))
    assert found.state == "stale"
    assert "gpu_name NVIDIA H100 80GB HBM3 (here NVIDIA L4)" in found.reason and "10.13.0 (here 10.9.0)" in found.reason


def test_unreadable_manifest_and_missing_files(tmp_path):
    cache = EngineCache(tmp_path)
    assert cache.lookup(key(), "fcn").state == "missing"
    path = cache.store(key(), "fcn", b"engine")
    manifest_path(path).write_text("{not json")
    assert check_engine(path, key()).state == "corrupt"
    manifest_path(path).unlink()
    assert check_engine(path, key()).state == "missing"


def test_profile_checks_its_order_and_accepts_shapes():
    with pytest.raises(BackendError, match="min <= opt <= max"):
        Profile((1, 3, 96, 96), (1, 3, 48, 48), (1, 3, 224, 224))
    assert PROFILE.accepts((1, 3, 96, 171)) and not PROFILE.accepts((1, 3, 300, 171))


def test_parse_shape_and_default_profiles():
    assert trt_build.parse_shape("520x924") == (1, 3, 520, 924)
    assert trt_build.parse_shape("520x924", batch=4) == (4, 3, 520, 924)
    assert trt_build.parse_shape("2x3x64x64") == (2, 3, 64, 64)
    with pytest.raises(ConfigError, match="HxW"):
        trt_build.parse_shape("big")
    fcn = trt_build.default_profile(ZOO["fcn_resnet50"].spec)
    assert fcn.accepts((1, 3, 520, 924))  # a 1080p frame at the default short side 520
    assert fcn.accepts((1, 3, 924, 520))  # and a portrait one
    duc = trt_build.default_profile(ZOO["duc_resnet101_hdc"].spec, batch=2)
    assert duc.min == (1, 3, 800, 800) and duc.max == (2, 3, 800, 800)


@pytest.fixture
def fake_tensorrt(monkeypatch):
    """A stand-in TensorRT module and GPU identity; builds count themselves and return known bytes."""
    module = types.SimpleNamespace(__name__="tensorrt", __version__="10.13.0")
    builds = []

    def build(trt, onnx_path, input_name, profile, *, workspace):
        builds.append((onnx_path, profile))
        return f"engine for {onnx_path.name} {profile.describe()}".encode()

    monkeypatch.setattr(trt_build, "import_tensorrt", lambda: module)
    monkeypatch.setattr(trt_build, "gpu_identity", lambda: ("NVIDIA H100 80GB HBM3", "9.0"))
    monkeypatch.setattr(trt_build, "build_serialized", build)
    return module, builds


def test_ensure_engine_builds_once_then_reuses(duc_onnx, tmp_path, fake_tensorrt):
    module, builds = fake_tensorrt
    spec = ZOO["duc_resnet101_hdc"].spec
    profile = trt_build.default_profile(spec)
    cache = EngineCache(tmp_path / "engines")
    first, typed_spec = trt_build.ensure_engine(duc_onnx, spec, precision="fp16", profile=profile, cache=cache)
    assert first.built and typed_spec.dtype == "float16" and len(builds) == 1
    assert builds[0][0].name.startswith("duc_standin-fp16-")  # TensorRT got the converted FP16 ONNX
    again, _ = trt_build.ensure_engine(duc_onnx, spec, precision="fp16", profile=profile, cache=cache)
    assert not again.built and again.path == first.path and len(builds) == 1

    first.path.write_bytes(b"garbage")  # corrupt: rebuilt under auto, refused under never
    with pytest.raises(BackendError, match="corrupt"):
        trt_build.ensure_engine(duc_onnx, spec, precision="fp16", profile=profile, cache=cache, rebuild="never")
    rebuilt, _ = trt_build.ensure_engine(duc_onnx, spec, precision="fp16", profile=profile, cache=cache)
    assert rebuilt.built and len(builds) == 2 and check_engine(rebuilt.path, rebuilt.key).ok

    module.__version__ = "11.0.0"  # a TensorRT upgrade makes a new key: a new engine beside the old one
    upgraded, _ = trt_build.ensure_engine(duc_onnx, spec, precision="fp16", profile=profile, cache=cache)
    assert upgraded.built and upgraded.path != first.path and len(builds) == 3
    with pytest.raises(BackendError, match="no fp32 engine"):
        trt_build.ensure_engine(duc_onnx, spec, precision="fp32", profile=profile, cache=cache, rebuild="never")


def test_manifest_version_mismatch_is_stale(tmp_path):
    path = EngineCache(tmp_path).store(key(), "fcn", b"engine")
    meta = json.loads(manifest_path(path).read_text())
    meta["manifest_version"] = engine_cache.MANIFEST_VERSION + 1
    manifest_path(path).write_text(json.dumps(meta))
    assert check_engine(path, key()).state == "stale"
