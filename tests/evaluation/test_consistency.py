"""Temporal consistency (VSPW TC, no ground truth) on a synthetic moving scene: arrays and a decoded video."""

from __future__ import annotations

import numpy as np
import pytest

from streamseg.evaluation.consistency import TemporalConsistency, sequence_consistency, video_consistency
from tests.support.videos import make_video, moving_scene

WIDTH, HEIGHT, FRAMES = 160, 96, 12


def scene_labels(index: int) -> np.ndarray:
    """The true classes of ``moving_scene(index)``: sky 0, road 1, the moving box 2."""
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    horizon = HEIGHT // 2
    labels[horizon:] = 1
    x = (index * 7) % max(1, WIDTH - WIDTH // 5)
    labels[horizon - HEIGHT // 8 : horizon + HEIGHT // 6, x : x + WIDTH // 5] = 2
    return labels


def labels_by_color(image: np.ndarray) -> np.ndarray:
    """Classes read back from a decoded frame's colors: red box, blue sky, grey road."""
    r, g, b = (image[..., k].astype(np.int16) for k in range(3))
    labels = np.where(b > r + 40, 0, 1).astype(np.uint8)
    labels[(r > 140) & (g < 100)] = 2
    return labels


IMAGES = [moving_scene(i, WIDTH, HEIGHT) for i in range(FRAMES)]


def test_true_labels_are_consistent_and_flicker_or_frozen_labels_are_not():
    truth = [scene_labels(i) for i in range(FRAMES)]
    rng = np.random.default_rng(0)
    noisy = []
    for labels in truth:
        flipped = labels.copy()
        flip = rng.random(labels.shape) < 0.1  # 10 % of pixels flicker to a random class each frame
        flipped[flip] = rng.integers(0, 3, int(flip.sum()), dtype=np.uint8)
        noisy.append(flipped)
    frozen = [truth[0]] * FRAMES  # labels that do not follow the moving box
    tc_truth = sequence_consistency(IMAGES, truth, 3)
    tc_noisy = sequence_consistency(IMAGES, noisy, 3)
    tc_frozen = sequence_consistency(IMAGES, frozen, 3)
    print(f"TC truth {tc_truth:.4f}, flicker {tc_noisy:.4f}, frozen {tc_frozen:.4f}")
    assert tc_truth > 0.95
    assert tc_noisy < tc_truth - 0.1
    assert tc_frozen < tc_truth - 0.02  # the warp follows the motion: labels that stay put disagree with it


def test_one_frame_has_no_pairs_and_a_size_change_starts_a_new_run():
    meter = TemporalConsistency(3)
    meter.update(IMAGES[0], scene_labels(0))
    assert meter.pairs == 0 and np.isnan(meter.tc)
    meter.update(np.zeros((48, 80, 3), np.uint8), np.zeros((48, 80), np.uint8))
    assert meter.pairs == 0
    with pytest.raises(ValueError, match="do not cover"):
        meter.update(IMAGES[1], np.zeros((10, 10), np.uint8))


def test_per_video_on_decoded_h264(tmp_path):
    video = make_video(tmp_path / "scene.mp4", width=WIDTH, height=HEIGHT, frames=FRAMES)
    still = make_video(tmp_path / "still.mp4", width=WIDTH, height=HEIGHT, frames=1)
    reports = video_consistency([video, still], labels_by_color, 3)
    assert [r.frames for r in reports] == [FRAMES, 1]
    assert reports[0].pairs == FRAMES - 1 and reports[0].tc > 0.9
    assert reports[1].pairs == 0 and np.isnan(reports[1].tc)
    assert reports[0].as_dict()["video"] == str(video)


def test_eval_consistency_reports_each_video(tmp_path):
    """``streamseg eval --consistency`` with a model whose class 1 is exactly the red box."""
    import json

    from streamseg.models.export import embed_spec
    from streamseg.models.spec import ModelSpec
    from tests.support.cli import run_cli
    from tests.support.onnx_models import RED_WINS_SPEC, red_wins_model

    model, _ = red_wins_model(tmp_path)
    embed_spec(model, ModelSpec(**RED_WINS_SPEC))
    first = make_video(tmp_path / "a.mp4", width=WIDTH, height=HEIGHT, frames=8)
    second = make_video(tmp_path / "b.mp4", width=96, height=64, frames=6)
    done = run_cli("eval", "--consistency", "-m", str(model), "--video", str(first), "--video", str(second), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [v["video"] for v in report["videos"]] == [str(first), str(second)]
    assert [v["pairs"] for v in report["videos"]] == [7, 5]
    assert all(v["tc"] > 0.8 for v in report["videos"])
    missing = run_cli("eval", "--consistency", "-m", str(model))
    assert missing.returncode == 2 and "--consistency needs --model and --video" in missing.stderr
