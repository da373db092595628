"""``streamseg datasets synth|info``: make a synthetic labeled dataset, or look at one."""

from __future__ import annotations

import re

import click

from streamseg.cli.command import Command, examples
from streamseg.cli.flags import output_option
from streamseg.datasets.folders import FORMATS


def _size(ctx, param, value: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)", value)
    if not match:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, e.g. 320x240, got {value!r}")
    return int(match.group(2)), int(match.group(1))


@click.group(epilog=examples("streamseg datasets synth -o synth/ --n 200", "streamseg datasets info synth/"))
def datasets() -> None:
    """Labeled segmentation datasets (VOC or Cityscapes layout)."""


@datasets.command(
    "synth",
    cls=Command,
    renamed={"--out": "--output", "--size": "--image-size"},
    epilog=examples(
        "streamseg datasets synth -o synth/",
        "streamseg datasets synth -o synth-cs/ --format cityscapes --n 100 --image-size 640x360 --video-frames 0",
    ),
)
@output_option("Folder to write.", dest="out", required=True, type=click.Path(file_okay=False))
@click.option("--format", "format_", type=click.Choice(FORMATS), default="voc", show_default=True, help="Layout.")
@click.option("--n", "n", type=int, default=400, show_default=True, help="Labeled images (train + val).")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same dataset.")
@click.option(
    "--image-size",
    "size",
    callback=_size,
    default="320x240",
    show_default=True,
    metavar="WxH",
    help="Image size, WIDTHxHEIGHT.",
)
@click.option("--val-fraction", type=float, default=0.2, show_default=True, help="Share of images in val.")
@click.option(
    "--video-frames",
    type=int,
    default=60,
    show_default=True,
    help="Frames of the held-out video in OUTPUT/heldout/ (0: none).",
)
@click.option("--fps", type=int, default=10, show_default=True, help="Frame rate of the held-out video.")
def synth(
    out: str, format_: str, n: int, seed: int, size: tuple[int, int], val_fraction: float, video_frames: int, fps: int
) -> None:
    """Write a synthetic street scene dataset: road, sidewalk, sky, car, person (and background).

    Also writes OUTPUT/classes.txt and a held-out video OUTPUT/heldout/heldout.mp4
    with its ground truth OUTPUT/heldout/labels/000000.png ... for `streamseg eval`.
    """
    from tqdm import tqdm

    from streamseg.datasets.writers import write_synthetic

    if video_frames < 0 or fps < 1:
        raise click.BadParameter("--video-frames must be >= 0 and --fps >= 1")
    with tqdm(total=n, desc="synth", unit="img", disable=None) as bar:

        def advance(images: int) -> None:
            bar.update(images)

        summary = write_synthetic(
            out,
            n=n,
            format=format_,
            seed=seed,
            size=size,
            val_fraction=val_fraction,
            video_frames=video_frames,
            fps=fps,
            progress=advance,
        )
    click.echo(f"wrote {summary.root}: {summary.train} train, {summary.val} val images ({format_})")
    if summary.video:
        click.echo(
            f"held-out video: {summary.video} ({summary.video_frames} frames), "
            f"labels in {summary.video.parent / 'labels'}"
        )


@datasets.command(
    "info",
    epilog=examples(
        "streamseg datasets info VOCdevkit/VOC2012", "streamseg datasets info cityscapes/ --format cityscapes"
    ),
)
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--format", "format_", type=click.Choice(FORMATS), default="voc", show_default=True, help="Layout.")
def info(root: str, format_: str) -> None:
    """Count the samples per split and list the classes of the dataset at ROOT."""
    from streamseg.datasets.folders import SegmentationFolder, read_classes
    from streamseg.errors import SourceError

    classes, _ = read_classes(root, format_)
    for split in ("train", "val"):
        try:
            folder = SegmentationFolder(root, format_, split)
        except SourceError as err:
            click.echo(f"{split}: none ({err})")
            continue
        click.echo(f"{split}: {len(folder)} samples")
    click.echo(f"{len(classes)} classes: " + ", ".join(f"{i} {name}" for i, name in enumerate(classes)))
