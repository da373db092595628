"""Models: built-in zoo entries, user ONNX files, and the specs that describe them."""

from __future__ import annotations

from pathlib import Path

from streamseg.errors import ModelError
from streamseg.models.cache import check_pinned
from streamseg.models.fetch import cache_folder, cached_path, sha256_of
from streamseg.models.spec import ModelSpec
from streamseg.models.zoo import ZOO, ZooEntry

SPEC_METADATA_KEY = "streamseg.spec"

__all__ = ["SPEC_METADATA_KEY", "ZOO", "ModelSpec", "ZooEntry", "resolve_model", "spec_from_onnx"]


def spec_from_onnx(path: str | Path) -> ModelSpec | None:
    """The spec ``streamseg models export`` embedded in the ONNX metadata, if any."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # onnx raises DecodeError and friends
        raise ModelError(f"{path} is not a readable ONNX model: {type(err).__name__}") from None
    for prop in model.metadata_props:
        if prop.key == SPEC_METADATA_KEY:
            return ModelSpec.from_json(prop.value, f"{path}: metadata {SPEC_METADATA_KEY}")
    return None


def resolve_model(model: str | Path, spec: ModelSpec | None = None) -> tuple[Path, ModelSpec]:
    """The ONNX file and spec for ``model``: a path, ``NAME`` or ``NAME:variant`` from the zoo.

    An explicit ``spec`` wins; otherwise a file's embedded spec, or the zoo's.
    """
    text = str(model)
    name, _, variant = text.partition(":")
    if name in ZOO and not Path(text).exists():
        entry = ZOO[name]
        variant = variant or "fp32"
        if variant not in entry.files:
            raise ModelError(f"{name} has no {variant!r} file (variants: {', '.join(entry.files)})")
        cache_folder("models", create=False)  # a cache others can write is refused, not trusted
        path = cached_path(entry.files[variant])
        if not path.exists():
            raise ModelError(
                f"{text} is not downloaded: run `streamseg models fetch {text}`, or "
                f"`streamseg models export {name} --output {name}.onnx` and pass --model {name}.onnx"
            )
        check_pinned(path, entry.files[variant].sha256, sha256_of)
        return path, spec or entry.spec
    path = Path(text)
    if not path.exists():
        if path.suffix or "/" in text:
            raise ModelError(f"model file not found: {text}")
        raise ModelError(f"unknown model {text!r} (built-in: {', '.join(ZOO)}; or give a path to an .onnx file)")
    if path.is_dir():
        raise ModelError(f"model path is a folder, not an .onnx file: {text}")
    found = spec or spec_from_onnx(path)
    if found is None:
        raise ModelError(
            f"{text} carries no streamseg spec: pass --spec FILE.yaml (see configs/) or a --config with a spec"
        )
    return path, found
