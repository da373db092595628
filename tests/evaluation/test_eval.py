"""`streamseg eval`: dataset mode in both layouts, label folders, and the ignore index."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import confusion_matrix

from streamseg.backends.onnxruntime import OnnxRuntimeBackend
from streamseg.frames import Frame
from streamseg.models import spec_from_onnx
from streamseg.postprocess.cpu import CpuPostprocessor
from streamseg.preprocess.cpu import CpuPreprocessor
from tests.support.cli import run_cli, run_segment

N_IMAGES = 3


def _fcn_paper(truth: np.ndarray, pred: np.ndarray, k: int) -> dict:
    """PA and mIoU straight from sklearn's confusion matrix (classes seen in truth or prediction)."""
    keep = truth != 255
    n = confusion_matrix(truth[keep], pred[keep], labels=list(range(k))).astype(float)
    t, p, d = n.sum(1), n.sum(0), np.diag(n)
    seen = (t + p) > 0
    return {"pixel_accuracy": d.sum() / t.sum(), "miou": np.mean(d[seen] / (t + p - d)[seen])}


@pytest.fixture(scope="module")
def samples(trained_model):
    """Three val images of the synthetic set, their masks (a block set to 255), and the model's labels."""
    names = (trained_model.data / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:N_IMAGES]
    spec = spec_from_onnx(trained_model.onnx)
    backend, prepare, decode = (
        OnnxRuntimeBackend(trained_model.onnx, spec),
        CpuPreprocessor(spec),
        CpuPostprocessor(spec),
    )
    out = []
    for i, name in enumerate(names):
        image = np.asarray(Image.open(trained_model.data / "JPEGImages" / f"{name}.jpg").convert("RGB"))
        mask = np.array(Image.open(trained_model.data / "SegmentationClass" / f"{name}.png"))
        mask[: mask.shape[0] // 3, : mask.shape[1] // 2] = 255  # ignored block
        prepared = prepare(Frame(name, i, image, None, None, time.time()))
        out.append((name, image, mask, decode(backend.run(prepared.tensor), prepared.geometry)))
    return out


def _write_voc(root: Path, samples, classes_txt: Path) -> Path:
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for name, image, mask, _ in samples:
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.png")  # lossless: same pixels as the model saw
        Image.fromarray(mask, "L").save(root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("".join(f"{s[0]}\n" for s in samples))
    shutil.copy(classes_txt, root / "classes.txt")
    return root


def _write_cityscapes(root: Path, samples, classes_txt: Path) -> Path:
    images, labels = root / "leftImg8bit" / "val" / "synthcity", root / "gtFine" / "val" / "synthcity"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for name, image, mask, _ in samples:
        Image.fromarray(image).save(images / f"{name}_leftImg8bit.png")
        Image.fromarray(mask, "L").save(labels / f"{name}_gtFine_labelTrainIds.png")
    shutil.copy(classes_txt, root / "classes.txt")
    return root


@pytest.mark.parametrize("layout", ["voc", "cityscapes"])
def test_dataset_mode_matches_an_independent_count(layout, samples, trained_model, tmp_path):
    write = _write_voc if layout == "voc" else _write_cityscapes
    root = write(tmp_path / layout, samples, trained_model.data / "classes.txt")
    proc = run_cli(
        "eval", "--model", str(trained_model.onnx), "--dataset", str(root), "--format", layout, "--json", check=True
    )
    report = json.loads(proc.stdout)
    truth = np.concatenate([s[2].ravel() for s in samples])
    pred = np.concatenate([s[3].ravel() for s in samples])
    expected = _fcn_paper(truth, pred, len(trained_model.classes))
    assert report["pixels"] == int(np.count_nonzero(truth != 255))  # the ignored block is not counted
    assert report["pixel_accuracy"] == pytest.approx(expected["pixel_accuracy"], abs=1e-9)
    assert report["miou"] == pytest.approx(expected["miou"], abs=1e-9)
    assert set(report["per_class"]) == set(trained_model.classes)
    assert report["miou"] > 0.5  # a trained model, not noise


def test_label_folders_after_run(trained_model, tmp_path):
    pred = tmp_path / "pred"
    run_segment(trained_model.video, trained_model.onnx, "--no-progress", labels_out=pred, check=True)
    proc = run_cli(
        "eval", "--predictions", str(pred), "--ground-truth", str(trained_model.video_labels), "--json", check=True
    )
    report = json.loads(proc.stdout)
    truths = sorted(trained_model.video_labels.glob("*.png"))
    truth = np.concatenate([np.asarray(Image.open(p)).ravel() for p in truths])
    preds = np.concatenate([np.asarray(Image.open(pred / p.name)).ravel() for p in truths])
    expected = _fcn_paper(truth, preds, len(trained_model.classes))
    assert list(report["per_class"]) == list(trained_model.classes)  # names from the dataset's classes.txt
    assert report["miou"] == pytest.approx(expected["miou"], abs=1e-9)
    assert report["miou"] > 0.5

    (pred / truths[0].name).unlink()
    proc = run_cli("eval", "--predictions", str(pred), "--ground-truth", str(trained_model.video_labels))
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "missing" in proc.stderr


@pytest.mark.slow
def test_eval_needs_exactly_one_mode(tmp_path):
    proc = run_cli("eval", "--json")
    assert proc.returncode != 0 and "exactly one of" in proc.stderr
    proc = run_cli("eval", "--model", "x.onnx", "--dataset", str(tmp_path), "--format", "voc")
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "not a VOC layout" in proc.stderr
