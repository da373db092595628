"""``streamseg eval``: accuracy against ground truth, agreement between two models, or temporal consistency.

Four modes, chosen by the options given:
  --model M --dataset DIR --format voc|cityscapes     the model on a labeled dataset
  --predictions DIR --ground-truth DIR                label PNGs against label PNGs
  --reference REF.onnx --candidate CAND --video V     a candidate against the FP32 reference
  --consistency --model M --video V [--video V2 ...]  TC per video (VSPW's, no ground truth)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from streamseg.cli.command import examples
from streamseg.cli.flags import backend_option, model_option, precision_option, size_option
from streamseg.errors import ConfigError


@click.command(
    "eval",
    epilog=examples(
        "streamseg eval -m runs/synth/model.onnx --dataset synth/ --size 240",
        "streamseg eval --predictions labels/ --ground-truth synth/heldout/labels",
        "streamseg eval --reference model.onnx --candidate model-int8.onnx --video street.mp4 --frames 16",
        "streamseg eval --consistency -m fcn_resnet50 --video street.mp4 --video park.mp4 --frames 50",
    ),
)
@model_option(help="Model to evaluate on --dataset; or where --predictions take class names from.")
@click.option("--dataset", type=click.Path(file_okay=False), help="Labeled dataset folder (VOC or Cityscapes layout).")
@click.option(
    "--format",
    "dataset_format",
    type=click.Choice(["voc", "cityscapes"]),
    default="voc",
    show_default=True,
    help="Layout of --dataset.",
)
@click.option("--split", default="val", show_default=True, help="Dataset split to evaluate.")
@click.option("--limit", type=int, help="Evaluate only the first N images of the split.")
@click.option("--predictions", type=click.Path(file_okay=False), help="Folder of predicted label PNGs.")
@click.option("--ground-truth", type=click.Path(file_okay=False), help="Folder of ground-truth label PNGs.")
@click.option("--classes-file", type=click.Path(dir_okay=False), help="Class names, one per line (classes.txt).")
@click.option("--reference", help="FP32 ONNX reference for agreement mode (run by ONNX Runtime).")
@click.option("--candidate", type=click.Path(dir_okay=False), help="Candidate model (.onnx, or a TensorRT .plan).")
@backend_option(
    default="onnxruntime",
    name="--candidate-backend",
    dest="candidate_backend",
    help="Backend that runs the candidate: onnxruntime, openvino, tensorrt or torch.",
)
@precision_option(help="What the candidate computes in (bf16: openvino) [default: the file's own].")
@click.option(
    "--consistency",
    is_flag=True,
    help="Temporal consistency of --model on each --video: its labels of frame t+1 warped back to t by "
    "optical flow, mIoU with those of t.",
)
@click.option("--video", multiple=True, help="Video whose frames agreement mode compares on (repeat for TC).")
@click.option("--frames", type=int, default=16, show_default=True, help="Frames spread over --video (TC: the first N).")
@size_option()
@backend_option(default="onnxruntime", help="Backend for --dataset mode.")
@click.option("--threads", type=int, help="Inference threads [default: all cores].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def eval_command(
    model,
    dataset,
    dataset_format,
    split,
    limit,
    predictions,
    ground_truth,
    classes_file,
    reference,
    candidate,
    candidate_backend,
    precision,
    consistency,
    video,
    frames,
    input_size,
    backend,
    threads,
    as_json,
) -> None:
    """Accuracy (PA, MPA, mIoU, FWIoU; ignore index 255), INT8/backend agreement with speed, or TC."""
    given = (("--dataset", dataset), ("--predictions", predictions), ("--reference", reference))
    modes = [name for name, on in (*given, ("--consistency", consistency)) if on]
    if len(modes) != 1:
        raise click.UsageError(
            "give exactly one of --dataset (with --model), --predictions (with --ground-truth), "
            "--reference (with --candidate and --video) or --consistency (with --model and --video)"
        )
    if consistency:
        _print_consistency(model, video, frames, input_size, backend, threads, as_json)
    elif dataset:
        if not model:
            raise click.UsageError("--dataset needs --model")
        from streamseg.evaluation.dataset import evaluate_dataset

        metrics, classes, images = evaluate_dataset(
            model,
            dataset,
            format=dataset_format,
            split=split,
            input_size=input_size,
            backend=backend,
            threads=threads,
            limit=limit,
        )
        _print_metrics(metrics, classes, f"{images} images of {dataset} ({dataset_format}, {split})", as_json)
    elif predictions:
        if not ground_truth:
            raise click.UsageError("--predictions needs --ground-truth")
        from streamseg.evaluation.dataset import evaluate_label_folders, max_label

        named = _classes(model, classes_file, Path(ground_truth))
        if named is None:  # no names anywhere: ids seen in either folder
            top = max(max_label(ground_truth), max_label(predictions))
            named = tuple(str(i) for i in range(top + 1))
        classes = named
        metrics, images = evaluate_label_folders(predictions, ground_truth, len(classes))
        _print_metrics(metrics, classes, f"{images} label maps of {predictions} against {ground_truth}", as_json)
    else:
        if not candidate or len(video) != 1:
            raise click.UsageError("--reference needs --candidate and one --video")
        if frames < 1:
            raise ConfigError(f"frames: must be at least 1, got {frames}")
        from streamseg.evaluation.agreement import compare

        report = compare(
            reference,
            candidate,
            video[0],
            frames=frames,
            input_size=input_size,
            candidate_backend=candidate_backend,
            threads=threads,
            candidate_precision=precision,
        )
        if as_json:
            click.echo(json.dumps(_finite(report.as_dict())))
            return
        click.echo(f"reference {report.reference} [{report.reference_backend}]")
        click.echo(f"candidate {report.candidate} [{report.candidate_backend}]")
        shape = "x".join(map(str, report.input_shape))
        click.echo(f"{len(report.frame_indices)} frames of {report.video}, input {shape}")
        click.echo(f"label agreement     {report.agreement:.2f}%")
        click.echo(f"mIoU vs reference   {report.miou_vs_reference:.2f}%")
        click.echo(f"logit error         max {report.max_logit_error:.4g}, mean {report.mean_logit_error:.4g}")
        click.echo(
            f"speed               reference {report.reference_fps:.3f} fps, candidate "
            f"{report.candidate_fps:.3f} fps ({report.speedup:.2f}x)"
        )


def _print_consistency(model, videos, frames, input_size, backend, threads, as_json) -> None:
    if not model or not videos:
        raise click.UsageError("--consistency needs --model and --video")
    if frames < 2:
        raise ConfigError(f"frames: TC needs at least 2, got {frames}")
    from streamseg.evaluation.consistency import model_consistency

    reports, name = model_consistency(
        model, videos, frames=frames, input_size=input_size, backend=backend, threads=threads
    )
    if as_json:
        click.echo(json.dumps(_finite({"model": name, "videos": [r.as_dict() for r in reports]})))
        return
    click.echo(f"temporal consistency of {name} (labels of t+1 warped back to t, mIoU)")
    for r in reports:
        click.echo(f"{r.video}: TC {_pct(r.tc)} over {r.pairs} frame pairs")


def _classes(model: str | None, classes_file: str | None, ground_truth: Path) -> tuple[str, ...] | None:
    """Class names from --classes-file, --model's spec, or a classes.txt at or above the ground truth."""
    if classes_file:
        return _read_names(Path(classes_file))
    if model:
        from streamseg.models import open_model

        return open_model(model).spec.classes
    for folder in (ground_truth, ground_truth.parent, ground_truth.parent.parent):
        if (folder / "classes.txt").is_file():
            return _read_names(folder / "classes.txt")
    return None


def _read_names(path: Path) -> tuple[str, ...]:
    """``classes.txt``: one class per line, optionally followed by ``#rrggbb``."""
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except OSError as err:
        raise ConfigError(f"cannot read {path}: {err.strerror or err}") from None
    names = tuple(
        line.rpartition(" #")[0].strip() if " #" in line else line
        for line in lines
        if line and not line.startswith("//")
    )
    if not names:
        raise ConfigError(f"{path}: no class names")
    return names


def _finite(data):
    """JSON has no NaN: undefined figures become null."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_finite(v) for v in data]
    return data


def _print_metrics(metrics, classes: tuple[str, ...], what: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(_finite({"evaluated": what, **metrics.as_dict(classes)})))
        return
    click.echo(what)
    click.echo(
        f"pixel accuracy {_pct(metrics.pixel_accuracy)}  mean accuracy {_pct(metrics.mean_accuracy)}  "
        f"mIoU {_pct(metrics.miou)}  FWIoU {_pct(metrics.fwiou)}  ({metrics.pixels} pixels)"
    )
    width = max(len(c) for c in classes)
    click.echo(f"{'class':<{width}}  {'IoU':>7}  {'acc':>7}")
    for name, iou, acc in zip(classes, metrics.iou, metrics.accuracy, strict=False):
        click.echo(f"{name:<{width}}  {_pct(iou):>7}  {_pct(acc):>7}")


def _pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{100 * value:.2f}%"
