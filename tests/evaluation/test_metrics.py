"""The FCN-paper metrics against a hand-checked example and scikit-learn's confusion matrix."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import confusion_matrix, jaccard_score, recall_score

from streamseg.evaluation.metrics import ConfusionMatrix


def test_tiny_example_checked_by_hand():
    # truth / prediction, 3 classes, one ignored pixel (255) that predicts class 2
    truth = np.array([[0, 0, 1], [1, 1, 255]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 2]], np.uint8)
    cm = ConfusionMatrix(3)
    cm.update(pred, truth)
    # n_00=1 n_01=1 | n_11=2 n_12=1 | class 2: never true, predicted once
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 1], [0, 0, 0]]
    m = cm.compute()
    assert m.pixels == 5
    assert m.pixel_accuracy == pytest.approx(3 / 5, abs=1e-12)
    assert m.mean_accuracy == pytest.approx((1 / 2 + 2 / 3) / 2, abs=1e-12)  # class 2 absent from the truth
    iou = [1 / (2 + 1 - 1), 2 / (3 + 3 - 2), 0 / (0 + 1 - 0)]  # n_ii / (t_i + sum_j n_ji - n_ii)
    assert m.iou.tolist() == pytest.approx(iou, abs=1e-12)
    assert m.miou == pytest.approx(sum(iou) / 3, abs=1e-12)  # predicted-only class 2 counts, with IoU 0
    assert m.fwiou == pytest.approx((2 * iou[0] + 3 * iou[1]) / 5, abs=1e-12)


def test_matches_sklearn_on_random_maps_with_ignored_pixels():
    rng = np.random.default_rng(7)
    k = 6
    cm = ConfusionMatrix(k)
    truths, preds = [], []
    for _ in range(4):  # accumulate over several "images"
        truth = rng.integers(0, k, (37, 53)).astype(np.uint8)
        truth[rng.random(truth.shape) < 0.1] = 255
        truth[truth == 4] = 1  # class 4 never in the truth
        pred = np.where(rng.random(truth.shape) < 0.6, truth, rng.integers(0, k, truth.shape)).astype(np.uint8)
        pred[truth == 255] = rng.integers(0, k)  # whatever the model says there must not count
        cm.update(pred, truth)
        truths.append(truth.ravel())
        preds.append(pred.ravel())
    t, p = np.concatenate(truths), np.concatenate(preds)
    keep = t != 255
    t, p = t[keep], p[keep]
    reference = confusion_matrix(t, p, labels=list(range(k)))
    assert np.array_equal(cm.matrix, reference)
    m = cm.compute()
    present = sorted(set(t) | set(p))
    assert m.pixel_accuracy == pytest.approx(np.mean(t == p), abs=1e-9)
    truth_present = sorted(set(t))
    assert m.mean_accuracy == pytest.approx(
        recall_score(t, p, labels=truth_present, average="macro", zero_division=0), abs=1e-9
    )
    assert m.miou == pytest.approx(jaccard_score(t, p, labels=present, average="macro"), abs=1e-9)
    per_class = jaccard_score(t, p, labels=present, average=None)
    freq = np.array([np.sum(t == c) for c in present]) / t.size
    assert m.fwiou == pytest.approx(float(np.sum(freq * per_class)), abs=1e-9)
    assert np.allclose(m.iou[present], per_class, atol=1e-9)


def test_ignore_index_changes_nothing_but_the_pixel_count():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, (20, 20)).astype(np.uint8)
    pred = rng.integers(0, 3, (20, 20)).astype(np.uint8)
    full = ConfusionMatrix(3)
    full.update(pred, truth)
    masked_truth = truth.copy()
    masked_truth[:, :10] = 255
    masked = ConfusionMatrix(3)
    masked.update(pred, masked_truth)
    right = ConfusionMatrix(3)
    right.update(pred[:, 10:], truth[:, 10:])
    assert np.array_equal(masked.matrix, right.matrix)
    assert masked.compute().pixels == 200 and full.compute().pixels == 400


def test_rejects_mismatched_shapes_and_out_of_range_predictions():
    cm = ConfusionMatrix(2)
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.uint8))
    with pytest.raises(ValueError, match="outside"):
        cm.update(np.full((2, 2), 5, np.uint8), np.zeros((2, 2), np.uint8))
