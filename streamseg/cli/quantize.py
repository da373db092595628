"""``streamseg quantize --model M --calib VIDEO|DIR --output OUT.onnx``: INT8 from your own footage."""

from __future__ import annotations

import click

from streamseg.cli.command import examples
from streamseg.cli.flags import model_option, output_option, size_option


@click.command(
    epilog=examples(
        "streamseg quantize -m model.onnx --calib street.mp4 -o model-int8.onnx --size 260",
        "streamseg quantize -m fcn_resnet50 --calib recordings/ --frames 128 --method percentile -o fcn-int8.onnx",
    )
)
@model_option(required=True, help="Built-in name or PATH.onnx (FP32) to quantize.")
@click.option("--calib", required=True, help="A video, or a folder of videos and images, to calibrate on.")
@click.option("--frames", type=int, default=64, show_default=True, help="Frames to sample, spread over the input.")
@output_option("INT8 Q/DQ ONNX to write.", required=True, type=click.Path(dir_okay=False))
@size_option(help="Short side of the calibration input (short_side models such as FCN; default: the spec's).")
@click.option(
    "--method",
    type=click.Choice(["minmax", "percentile", "entropy"]),
    default="minmax",
    show_default=True,
    help="How activation ranges are chosen from the calibration frames.",
)
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False), help="Model spec YAML for a foreign ONNX.")
def quantize(
    model: str, calib: str, frames: int, output: str, input_size: int | None, method: str, spec_path: str | None
) -> None:
    """Write a symmetric Q/DQ INT8 ONNX (zero points 0) and OUT.manifest.json beside it.

    ONNX Runtime runs the result on the CPU; TensorRT builds INT8 engines from it.
    """
    from streamseg.models.spec import ModelSpec
    from streamseg.quantize import manifest_path
    from streamseg.quantize import quantize as run_quantize

    spec = ModelSpec.from_yaml(spec_path) if spec_path else None
    manifest = run_quantize(model, calib, output, frames=frames, input_size=input_size, method=method, spec=spec)
    cal = manifest["calibration"]
    click.echo(
        f"wrote {output} (int8 Q/DQ, {manifest['method']['qdq_nodes']} Q/DQ nodes, "
        f"{cal['frame_count']} calibration frames from {len(cal['sources'])} file(s), "
        f"{manifest['seconds']} s)"
    )
    click.echo(f"wrote {manifest_path(output)}")
