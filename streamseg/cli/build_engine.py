"""``streamseg build-engine --model M --precision fp16``: build (or reuse) a cached TensorRT engine."""

from __future__ import annotations

import shutil

import click

from streamseg.cli.command import examples
from streamseg.cli.flags import model_option, output_option, precision_option, size_option


@click.command(
    "build-engine",
    epilog=examples(
        "streamseg build-engine -m model.onnx --precision fp16 --size 520",
        "streamseg build-engine -m model-int8.onnx --precision int8 --batch 4 -o model-int8.plan",
    ),
)
@model_option(required=True, help="Built-in name, NAME:variant, or PATH.onnx.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), help="Model spec YAML for a foreign ONNX.")
@precision_option(
    default="fp16",
    help="fp16 converts the FP32 ONNX; int8 needs a Q/DQ ONNX (streamseg quantize); "
    "bf16 is not a TensorRT precision here.",
)
@size_option(help="Short side of the model input, as `run --size`.")
@click.option("--min-shape", help="Smallest input, HxW or NxCxHxW [default: from the spec].")
@click.option("--opt-shape", help="Input TensorRT tunes for [default: from the spec].")
@click.option("--max-shape", help="Largest input [default: from the spec].")
@click.option("--batch", type=click.IntRange(1, 64), default=1, show_default=True, help="Largest batch.")
@click.option(
    "--workspace", type=click.FloatRange(0.1), default=4.0, show_default=True, help="Builder workspace limit, GiB."
)
@click.option(
    "--engine-dir", type=click.Path(file_okay=False), help="Engine cache [default: ~/.cache/streamseg/engines]."
)
@click.option("--force", is_flag=True, help="Rebuild even when the cache holds a matching engine.")
@output_option("Also copy the engine (and manifest) here.", type=click.Path(dir_okay=False))
def build_engine(
    model: str,
    spec_path: str | None,
    precision: str,
    input_size: int | None,
    min_shape: str | None,
    opt_shape: str | None,
    max_shape: str | None,
    batch: int,
    workspace: float,
    engine_dir: str | None,
    force: bool,
    output: str | None,
) -> None:
    """Build a TensorRT engine for MODEL at PRECISION, cached by ONNX hash, TensorRT version and GPU."""
    from streamseg.backends.engine_cache import EngineCache, Profile, manifest_path
    from streamseg.backends.tensorrt import default_engine_dir
    from streamseg.backends.trt_build import default_profile, ensure_engine, import_tensorrt, parse_shape
    from streamseg.models import resolve_model
    from streamseg.models.spec import ModelSpec

    import_tensorrt()  # fail first, in one line, when TensorRT is absent
    spec = ModelSpec.from_yaml(spec_path) if spec_path else None
    onnx_path, spec = resolve_model(model, spec)
    spec = spec.with_short_side(input_size)
    profile = default_profile(spec, batch=batch)
    given = [s for s in (min_shape, opt_shape, max_shape) if s]
    if given:
        if len(given) < 3:
            raise click.UsageError("give all three of --min-shape, --opt-shape and --max-shape, or none")
        lo, opt, hi = (parse_shape(s, batch=b) for s, b in zip(given, (1, batch, batch), strict=True))
        profile = Profile(lo, opt, hi)
    cache = EngineCache(engine_dir or default_engine_dir())
    built, _ = ensure_engine(
        onnx_path,
        spec,
        precision=precision,
        profile=profile,
        cache=cache,
        rebuild="always" if force else "auto",
        workspace=int(workspace * (1 << 30)),
    )
    if output:
        shutil.copyfile(built.path, output)
        shutil.copyfile(manifest_path(built.path), f"{output}.json")
    state = "built" if built.built else "reused"
    click.echo(
        f"{state} {output or built.path} ({precision}, {profile.describe()}, "
        f"{built.key.trt_module} {built.key.trt_version}, {built.key.gpu_name} "
        f"sm {built.key.compute_capability})"
    )
