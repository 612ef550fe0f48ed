"""Metrics against an independent, loop-by-loop implementation of the SegNet paper's definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from segnet_edge.baseline import ColourBaseline
from segnet_edge.metrics import argmax_agreement, confusion_matrix, scores


def independent_scores(labels, predictions, num_classes, ignore):
    pairs = [(int(t), int(p)) for t, p in zip(labels.ravel(), predictions.ravel()) if t != ignore]
    correct = sum(t == p for t, p in pairs)
    ious, accs = [], []
    for c in range(num_classes):
        tp = sum(t == c and p == c for t, p in pairs)
        fn = sum(t == c and p != c for t, p in pairs)
        fp = sum(t != c and p == c for t, p in pairs)
        if tp + fn:
            ious.append(tp / (tp + fn + fp))
            accs.append(tp / (tp + fn))
    return correct / len(pairs), sum(accs) / len(accs), sum(ious) / len(ious)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_an_independent_implementation(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, size=(3, 17, 19))  # 5 classes + void 5
    labels[labels == 4] = rng.integers(0, 3)  # make one class absent sometimes
    predictions = np.where(rng.random(labels.shape) < 0.6, labels, rng.integers(0, 5, labels.shape))
    predictions = np.where(predictions == 5, 0, predictions)
    cm = confusion_matrix(labels, predictions, 5, ignore_label=5)
    assert cm.sum() == np.count_nonzero(labels != 5)
    s = scores(cm)
    g, c, m = independent_scores(labels, predictions, 5, 5)
    assert s.global_accuracy == pytest.approx(g)
    assert s.class_accuracy == pytest.approx(c)
    assert s.mean_iou == pytest.approx(m)


def test_perfect_and_absent_classes():
    labels = np.array([[0, 1], [1, 255]])
    s = scores(confusion_matrix(labels, labels, 3, ignore_label=255))
    assert s.global_accuracy == 1.0 and s.mean_iou == 1.0
    assert math.isnan(s.per_class_iou[2])
    assert s.to_json()["per_class_iou"][2] is None


def test_argmax_agreement_on_probabilities_and_labels():
    a = np.zeros((1, 2, 2, 3))
    a[..., 0] = 1
    b = a.copy()
    b[0, 0, 0] = [0, 1, 0]
    assert argmax_agreement(a, b) == 0.75
    assert argmax_agreement(a.argmax(-1), b.argmax(-1)) == 0.75


def test_colour_baseline_learns_colour_and_only_colour():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, size=(4, 8, 8))
    images = np.where(labels[..., None] == 1, 200, 30).astype(np.uint8).repeat(3, -1)
    baseline = ColourBaseline().fit(images, labels, 2)
    np.testing.assert_array_equal(baseline.predict(images), labels)
    grey = np.full_like(images, 120)
    assert len(np.unique(baseline.predict(grey))) == 1  # one colour, one answer: it cannot use context
