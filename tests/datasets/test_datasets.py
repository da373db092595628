"""Dataset folders (VOC, Cityscapes) and the synthetic street scene generator, through the real CLI."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from streamseg.datasets import SegmentationFolder, synth
from streamseg.errors import ConfigError, SourceError
from tests.support.cli import run_cli


def _synth(out, *extra: str) -> None:
    run_cli("datasets", "synth", "--out", str(out), *extra, check=True)


@pytest.mark.slow
def test_synth_voc_layout_is_readable_and_labeled(tmp_path):
    _synth(tmp_path, "--n", "10", "--size", "96x64", "--video-frames", "0")
    train, val = SegmentationFolder(tmp_path, "voc", "train"), SegmentationFolder(tmp_path, "voc", "val")
    assert (len(train), len(val)) == (8, 2)
    assert not set(train.names) & set(val.names)
    assert train.classes == synth.CLASSES and train.palette == synth.PALETTE  # from classes.txt
    seen = np.zeros(len(synth.CLASSES), bool)
    for _name, image, mask in train:
        assert image.shape == (64, 96, 3) and image.dtype == np.uint8
        assert mask.shape == (64, 96) and mask.max() < len(synth.CLASSES)
        seen[np.unique(mask)] = True
        # the image carries the labels: sky pixels are bluer than road pixels
        if (mask == synth.SKY).any() and (mask == synth.ROAD).any():
            blue = image[..., 2].astype(int) - image[..., 0]
            assert blue[mask == synth.SKY].mean() > blue[mask == synth.ROAD].mean()
    assert seen.all(), f"classes never drawn: {np.flatnonzero(~seen)}"
    with Image.open(tmp_path / "SegmentationClass" / f"{train.names[0]}.png") as png:
        assert png.mode == "P"  # palette PNG, pixel value = class id, as VOC ships them


@pytest.mark.slow
def test_synth_is_deterministic_per_seed(tmp_path):
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        _synth(tmp_path / name, "--n", "4", "--size", "64x48", "--seed", seed, "--video-frames", "0")
    masks = {name: [s.mask for s in SegmentationFolder(tmp_path / name, "voc", "train")] for name in "abc"}
    images = {name: (tmp_path / name / "JPEGImages" / "synth_00000.jpg").read_bytes() for name in "abc"}
    assert images["a"] == images["b"] and all(np.array_equal(x, y) for x, y in zip(masks["a"], masks["b"]))
    assert images["a"] != images["c"]
    assert any(not np.array_equal(x, y) for x, y in zip(masks["a"], masks["c"]))


def test_synth_cityscapes_layout(tmp_path):
    _synth(tmp_path, "--n", "5", "--format", "cityscapes", "--size", "64x48", "--video-frames", "0")
    val = SegmentationFolder(tmp_path, "cityscapes", "val")
    assert len(val) == 1 and len(SegmentationFolder(tmp_path, "cityscapes", "train")) == 4
    name, image, mask = val[0]
    assert (tmp_path / "gtFine" / "val" / "synth" / f"{name}_gtFine_labelTrainIds.png").exists()
    assert image.shape[:2] == mask.shape == (48, 64)
    assert val.classes == synth.CLASSES


@pytest.mark.slow
def test_heldout_video_matches_its_labels(tmp_path):
    _synth(tmp_path, "--n", "2", "--size", "128x96", "--video-frames", "12", "--fps", "6")
    with av.open(str(tmp_path / "heldout" / "heldout.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    labels = sorted((tmp_path / "heldout" / "labels").glob("*.png"))
    assert len(frames) == len(labels) == 12
    assert [p.name for p in labels[:2]] == ["000000.png", "000001.png"]  # as `run --labels-out` names them
    masks = [np.asarray(Image.open(p)) for p in labels]
    assert all(m.shape == f.shape[:2] for m, f in zip(masks, frames))
    for cls in (synth.CAR, synth.PERSON):
        assert all((m == cls).any() for m in masks), f"class {cls} missing from some frames"
    assert not np.array_equal(masks[0] == synth.CAR, masks[-1] == synth.CAR)  # cars move
    brightness = [f.mean() for f in frames]
    assert max(brightness) - min(brightness) > 10  # the light dims mid-clip
    # the encoded video still shows the labeled scene: sky above is bluer than the road
    blue = frames[0][..., 2].astype(int) - frames[0][..., 0]
    assert blue[masks[0] == synth.SKY].mean() > blue[masks[0] == synth.ROAD].mean() + 10


def test_folder_reports_broken_layouts(tmp_path):
    with pytest.raises(SourceError, match="not a VOC layout"):
        SegmentationFolder(tmp_path, "voc", "val")
    with pytest.raises(SourceError, match="not a Cityscapes layout"):
        SegmentationFolder(tmp_path, "cityscapes", "val")
    with pytest.raises(ConfigError, match="format"):
        SegmentationFolder(tmp_path, "coco", "val")
    _synth(tmp_path, "--n", "3", "--size", "64x48", "--video-frames", "0")
    listing = tmp_path / "ImageSets" / "Segmentation" / "val.txt"
    listing.write_text(listing.read_text() + "not_there\n")
    with pytest.raises(SourceError, match="not_there is listed"):
        SegmentationFolder(tmp_path, "voc", "val")
    listing.write_text("synth_00002\n")
    Image.new("RGB", (64, 48)).save(tmp_path / "SegmentationClass" / "synth_00002.png")
    with pytest.raises(SourceError, match="palette or grayscale"):
        SegmentationFolder(tmp_path, "voc", "val")[0]


def test_folder_without_classes_file_uses_the_standard_sets(tmp_path):
    (tmp_path / "ImageSets" / "Segmentation").mkdir(parents=True)
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "SegmentationClass").mkdir()
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("x\n")
    Image.new("RGB", (8, 6), (10, 20, 30)).save(tmp_path / "JPEGImages" / "x.jpg")
    mask = np.full((6, 8), 255, np.uint8)
    mask[:3] = 15
    Image.fromarray(mask).save(tmp_path / "SegmentationClass" / "x.png")
    folder = SegmentationFolder(tmp_path, "voc", "val")
    assert folder.num_classes == 21 and folder.classes[15] == "person"
    assert np.array_equal(folder[0].mask, mask)


@pytest.mark.slow
def test_cli_rejects_bad_synth_options(tmp_path):
    proc = run_cli("datasets", "synth", "--out", str(tmp_path), "--size", "big")
    assert proc.returncode != 0 and "WIDTHxHEIGHT" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("datasets", "synth", "-o", str(tmp_path), "--n", "1")
    assert proc.returncode != 0 and proc.stderr.strip().startswith("streamseg: error:")
    assert "Traceback" not in proc.stderr
