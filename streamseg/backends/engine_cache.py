"""TensorRT engines cached on disk, each beside a manifest that says what it was built from and for.

An engine only runs on the TensorRT release and GPU model that built it, for
the ONNX, precision and shape profile it was built from. The cache key holds
all of these; the engine file is named by the key's hash, and its manifest
(``<hash>.json``) repeats the key and the engine's sha256. A lookup returns an
engine only when the manifest matches the key and the bytes match the hash;
anything else is reported as missing, stale or corrupt, and the caller
rebuilds it or refuses. Nothing is ever loaded blindly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from streamseg.errors import BackendError
from streamseg.models.cache import private_dir, write_atomic
from streamseg.models.fetch import sha256_of

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
Shape = tuple[int, int, int, int]  # (N, C, H, W)


@dataclass(frozen=True)
class Profile:
    """The input shapes an engine accepts: TensorRT's min/opt/max optimization profile."""

    min: Shape
    opt: Shape
    max: Shape

    def __post_init__(self) -> None:
        for axis in range(4):
            if not 1 <= self.min[axis] <= self.opt[axis] <= self.max[axis]:
                raise BackendError(
                    f"shape profile needs 1 <= min <= opt <= max on every axis, got "
                    f"min {_dims(self.min)}, opt {_dims(self.opt)}, max {_dims(self.max)}"
                )

    def accepts(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    def describe(self) -> str:
        return f"{_dims(self.min)}..{_dims(self.opt)}..{_dims(self.max)}"


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; two engines with equal keys are interchangeable."""

    onnx_sha256: str
    precision: str  # fp32 | fp16 | int8: which ONNX the engine came from
    profile: Profile
    trt_module: str  # tensorrt | tensorrt_rtx
    trt_version: str
    gpu_name: str
    compute_capability: str  # e.g. "9.0"

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def as_dict(self) -> dict:
        data = asdict(self)
        data["profile"] = {k: list(v) for k, v in data["profile"].items()}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> EngineKey:
        profile = Profile(**{k: tuple(v) for k, v in data["profile"].items()})
        return cls(**{**data, "profile": profile})


@dataclass(frozen=True)
class Lookup:
    """A cache answer: the engine path when usable, else why not (``missing``, ``stale``, ``corrupt``)."""

    path: Path
    state: str  # ok | missing | stale | corrupt
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "ok"


class EngineCache:
    """A folder of ``<name>-<hash>.engine`` files with ``.json`` manifests."""

    def __init__(self, folder: str | Path):
        # engines are deserialized into the process: a folder someone else can write is refused
        self.folder = private_dir(folder)

    def path_for(self, key: EngineKey, stem: str) -> Path:
        return self.folder / f"{stem}-{key.precision}-{key.digest()[:16]}.engine"

    def lookup(self, key: EngineKey, stem: str) -> Lookup:
        return check_engine(self.path_for(key, stem), key)

    def store(self, key: EngineKey, stem: str, engine: bytes) -> Path:
        """Write ``engine`` and its manifest atomically; returns the engine path."""
        path = self.path_for(key, stem)
        write_engine(path, key, engine)
        return path


def manifest_path(engine: Path) -> Path:
    return engine.with_suffix(engine.suffix + ".json")


def write_engine(path: str | Path, key: EngineKey, engine: bytes) -> None:
    """The engine, then its manifest; each written to a temporary name and renamed into place."""
    path = Path(path)
    manifest = {
        "manifest_version": MANIFEST_VERSION,
        "key": key.as_dict(),
        "engine_sha256": hashlib.sha256(engine).hexdigest(),
        "engine_bytes": len(engine),
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_atomic(path, engine)
    write_atomic(manifest_path(path), (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())


def check_engine(path: str | Path, key: EngineKey) -> Lookup:
    """Whether the engine at ``path`` was built for ``key`` and is intact."""
    path = Path(path)
    meta_path = manifest_path(path)
    if not path.is_file() or not meta_path.is_file():
        return Lookup(path, "missing", "no engine" if not path.is_file() else "no manifest beside it")
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("manifest_version") != MANIFEST_VERSION:
            return Lookup(path, "stale", f"manifest version {meta.get('manifest_version')!r}")
        built_for = EngineKey.from_dict(meta["key"])
        expected_sha = meta["engine_sha256"]
    except (ValueError, KeyError, TypeError, BackendError) as err:
        return Lookup(path, "corrupt", f"unreadable manifest ({type(err).__name__})")
    if built_for != key:
        return Lookup(path, "stale", "built for " + describe_difference(built_for, key))
    if sha256_of(path) != expected_sha:
        return Lookup(path, "corrupt", "engine bytes do not match the manifest's sha256")
    return Lookup(path, "ok")


def describe_difference(built: EngineKey, wanted: EngineKey) -> str:
    """``trt_version 10.3 (here 10.9), gpu_name …``: the fields that differ."""
    a, b = built.as_dict(), wanted.as_dict()
    diffs = [f"{k} {a[k]} (here {b[k]})" for k in a if a[k] != b[k]]
    return ", ".join(diffs) or "an identical key"


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape)
