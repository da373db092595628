"""``streamseg models list|export|fetch``: the built-in zoo."""

from __future__ import annotations

import click

from streamseg.cli.command import examples
from streamseg.cli.flags import output_option
from streamseg.cli.model_hint import FIRST_MODEL
from streamseg.models import ZOO
from streamseg.models.fetch import cached_path


@click.group(
    epilog=examples(
        "streamseg models list",
        f"streamseg models export {FIRST_MODEL} -o model.onnx",
        "streamseg models fetch fcn_resnet50:int8",
    )
)
def models() -> None:
    """Built-in models: list them, export ONNX from torchvision, fetch the zoo's files."""


@models.command("list", epilog=examples("streamseg models list"))
def list_models() -> None:
    """The zoo, with sources, classes and published accuracy."""
    for entry in ZOO.values():
        spec = entry.spec
        click.echo(f"{entry.name}: {entry.description}")
        click.echo(
            f"  input {spec.input_name} ({spec.resize.mode} {spec.resize.size}), output {spec.output_name}, "
            f"{spec.num_classes} classes"
        )
        if entry.torchvision_weights:
            click.echo(f"  export: torchvision {entry.torchvision_builder}, weights {entry.torchvision_weights}")
        for variant, source in entry.files.items():
            state = "cached" if cached_path(source).exists() else "not downloaded"
            click.echo(f"  fetch {entry.name}:{variant}: {source.url.rsplit('/', 1)[-1]} ({state})")
        for acc in entry.accuracy:
            click.echo(f"  {acc.metric} {acc.value:.2f}% on {acc.dataset} ({acc.reported_by})")
        if entry.gflops and entry.gflops_input:
            click.echo(f"  {entry.gflops:.1f} GFLOPs at {entry.gflops_input[0]}x{entry.gflops_input[1]}")


@models.command(
    "export",
    epilog=examples(
        f"streamseg models export {FIRST_MODEL} --weights pretrained -o model.onnx",
        "streamseg models export fcn_resnet50 --weights none -o m.onnx",
    ),
)
@click.argument("name", type=click.Choice(sorted(ZOO)))
@click.option(
    "--weights",
    type=click.Choice(["none", "pretrained"]),
    default="none",
    show_default=True,
    help="none: random non-zero weights (offline); pretrained: torchvision's checksum-pinned download.",
)
@output_option("ONNX file to write.", required=True, type=click.Path(dir_okay=False))
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random weights.")
def export_model(name: str, weights: str, output: str, seed: int) -> None:
    """Write NAME as ONNX (dynamic H/W for the torchvision models) with its spec embedded."""
    from streamseg.models.export import export

    path = export(name, output, weights=weights, seed=seed)
    click.echo(f"wrote {path} ({name}, weights {weights})")


@models.command(
    "fetch",
    epilog=examples(
        "streamseg models fetch fcn_resnet50", "streamseg models fetch fcn_resnet50:int8 duc_resnet101_hdc"
    ),
)
@click.argument("names", nargs=-1, required=True)
def fetch_models(names: tuple[str, ...]) -> None:
    """Download the zoo's ONNX files (NAME or NAME:int8), verify sha256, cache them."""
    from tqdm import tqdm

    from streamseg.errors import ModelError
    from streamseg.models.fetch import fetch

    for text in names:
        name, _, variant = text.partition(":")
        if name not in ZOO:
            raise ModelError(f"unknown model {name!r} (built-in: {', '.join(ZOO)})")
        files = ZOO[name].files
        if not files:
            raise ModelError(f"{name} has no published ONNX file: use `streamseg models export {name}`")
        variant = variant or "fp32"
        if variant not in files:
            raise ModelError(f"{name} has no {variant!r} file (variants: {', '.join(files)})")
        with tqdm(unit="B", unit_scale=True, desc=text) as bar:
            path = fetch(files[variant], progress=bar)
        click.echo(f"{text}: {path}")
