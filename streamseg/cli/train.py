"""``streamseg train``: fine-tune or train an FCN on a labeled folder and export it for ``streamseg run``."""

from __future__ import annotations

from pathlib import Path

import click

from streamseg.cli.command import Command, examples
from streamseg.cli.flags import model_option, size_option
from streamseg.datasets.folders import FORMATS

MODEL_NAMES = (
    "fcn_tiny",
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)  # streamseg.training.models.MODELS, without torch


@click.command(
    cls=Command,
    renamed={"--base-size": "--size"},
    epilog=examples(
        "streamseg train --data synth/ -o runs/synth --epochs 10 --size 120",
        "streamseg train -m fcn_resnet50 --data VOCdevkit/VOC2012 --format voc --epochs 30 -o runs/voc",
        "streamseg train -m fcn_resnet101 --data cityscapes/ --format cityscapes --num-classes 19 -o runs/cs",
    ),
)
@model_option(
    type=click.Choice(MODEL_NAMES),
    default="fcn_tiny",
    show_default=True,
    help="fcn_tiny: small, trains from scratch on a CPU; the others: torchvision's (see `models list`).",
)
@click.option("--data", required=True, type=click.Path(file_okay=False), help="Dataset folder.")
@click.option(
    "--format", "format_", type=click.Choice(FORMATS), default="voc", show_default=True, help="Dataset layout."
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for last.pt, best.pt, history.jsonl and model.onnx.",
)
@click.option("--num-classes", type=int, help="Classes to train [default: the dataset's classes].")
@click.option("--epochs", type=int, default=30, show_default=True)
@click.option("--batch", type=int, default=8, show_default=True, help="Images per step.")
@click.option("--lr", type=float, help="Base learning rate [default: 0.05 fcn_tiny, 0.01 the others].")
@click.option("--weight-decay", type=float, default=1e-4, show_default=True)
@click.option("--aux-weight", type=float, default=0.5, show_default=True, help="Weight of the aux head's loss.")
@size_option(dest="base_size", help="Short side the model sees [default: the first image's].")
@click.option("--crop-size", type=int, help="Training crop [default: min(base size, 480)].")
@click.option(
    "--scale-range",
    type=(float, float),
    default=(0.5, 2.0),
    show_default=True,
    help="Random resize range, relative to the base size.",
)
@click.option(
    "--weights",
    type=click.Choice(["none", "pretrained"]),
    help="Start from random or torchvision weights [default: pretrained where they exist].",
)
@click.option("--resume", type=click.Path(dir_okay=False), help="Continue from a last.pt.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (AMP on CUDA).")
@click.option("--workers", type=int, default=0, show_default=True, help="Data loading processes.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--export/--no-export", default=True, show_default=True, help="Write model.onnx from best.pt.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train(data: str, output: str, format_: str, resume: str | None, no_progress: bool, **options) -> None:
    """Train --model on the train split of --data, scoring mIoU on its val split after every epoch.

    The best epoch is exported to OUTPUT/model.onnx with its classes and
    palette embedded: `streamseg run VIDEO -o out.mp4 -m OUTPUT/model.onnx`.
    """
    from streamseg.training.trainer import TrainOptions
    from streamseg.training.trainer import train as run_training

    opts = TrainOptions(
        data=Path(data),
        output=Path(output),
        format=format_,
        resume=Path(resume) if resume else None,
        progress=False if no_progress else None,
        **options,
    )
    result = run_training(opts)
    click.echo(
        f"best val mIoU {result.best_miou:.3f} at epoch {result.best_epoch}/{result.epochs}; "
        f"checkpoints in {result.output}"
    )
    if result.onnx:
        click.echo(f"exported {result.onnx}: streamseg run VIDEO -o out.mp4 -m {result.onnx}")
