"""The parity measures that explain an int8 shortfall: agreement on confident pixels and off class edges, and the model's own
sensitivity to input noise below a camera's 8-bit step."""

from __future__ import annotations

import numpy as np
import pytest

from segnet_edge.convert.parity import CONFIDENT_MARGIN, class_edges, compare, sensitivity, top2_margin
from segnet_edge.convert.report import edge_line
from segnet_edge.device.metadata import ModelMetadata, Normalization


def _metadata(std=(1.0, 1.0, 1.0)) -> ModelMetadata:
    return ModelMetadata(class_names=("a", "b"), palette=((0, 0, 0), (255, 255, 255)), input_size=(2, 2),
                         normalization=Normalization(std=std))


def test_confident_agreement_counts_only_pixels_keras_does_not_call_near_ties():
    reference = np.array([[[[0.52, 0.48], [0.9, 0.1]], [[0.2, 0.8], [0.3, 0.7]]]], np.float32)  # 1 near tie
    flipped_tie = np.array([[[[0.4, 0.6], [0.9, 0.1]], [[0.2, 0.8], [0.3, 0.7]]]], np.float32)
    parity = compare(reference, flipped_tie, None, _metadata())
    assert parity.agreement == pytest.approx(3 / 4)
    assert parity.confident_agreement == pytest.approx(1.0)
    flipped_sure = flipped_tie.copy()
    flipped_sure[0, 0, 1] = (0.1, 0.9)
    assert compare(reference, flipped_sure, None, _metadata()).confident_agreement == pytest.approx(2 / 3)
    np.testing.assert_allclose(top2_margin(reference)[0], [[0.04, 0.8], [0.6, 0.4]], atol=1e-6)
    assert CONFIDENT_MARGIN == 0.1


def test_edge_measures_split_disagreement_into_moved_outlines_and_wrong_regions():
    # Keras: class 1 in the right half of a 6x8 map; the artifact moves that edge one pixel left and
    # also gets one pixel far from any edge wrong
    keras_labels = np.zeros((1, 6, 8), np.int64)
    keras_labels[:, :, 4:] = 1
    edges = class_edges(keras_labels)
    assert edges[0, :, 3:5].all() and edges.sum() == 12  # the columns either side of the edge, radius 1
    assert not class_edges(keras_labels, radius=1)[0, :, [0, 1, 2, 5, 6, 7]].any()
    artifact_labels = keras_labels.copy()
    artifact_labels[:, :, 3] = 1  # the outline moved
    artifact_labels[0, 0, 0] = 1  # a wrong pixel inside a region
    reference, probabilities = np.eye(2, dtype=np.float32)[keras_labels], np.eye(2, dtype=np.float32)[artifact_labels]
    parity = compare(reference, probabilities, None, _metadata())
    assert parity.agreement == pytest.approx(1 - 7 / 48)
    assert parity.edge_share == pytest.approx(12 / 48)
    assert parity.edge_share_of_disagreement == pytest.approx(6 / 7)
    assert parity.off_edge_agreement == pytest.approx(1 - 1 / 36)
    assert compare(reference, reference, None, _metadata()).edge_share_of_disagreement is None
    assert parity.off_edge_pixels == 36
    assert edge_line(parity).endswith("away from those edges agreement is 97.22%")


def test_edge_line_names_the_count_when_almost_every_pixel_is_an_edge():
    # an undecided model: a label map of single-pixel speckle is all edges but for one calm corner
    keras_labels = np.indices((40, 40)).sum(0)[None] % 2
    keras_labels[0, :3, :3] = 0
    artifact_labels = 1 - keras_labels
    reference, probabilities = np.eye(2, dtype=np.float32)[keras_labels], np.eye(2, dtype=np.float32)[artifact_labels]
    parity = compare(reference, probabilities, None, _metadata())
    assert parity.off_edge_pixels == 4 and parity.off_edge_agreement == 0.0
    assert "away from those edges (only 4 pixels) agreement is 0.00%" in edge_line(parity)


def test_sensitivity_measures_flips_under_half_a_grey_level_of_noise():
    # a "model" whose class is the sign of (red channel - 100): pixels within 0.5 of the threshold may flip
    def predict(x: np.ndarray) -> np.ndarray:
        score = np.clip((x[..., 2:3] - 100.0) * 0.5 + 0.5, 0, 1)
        return np.concatenate([1 - score, score], axis=-1)

    inputs = np.zeros((1, 40, 50, 3), np.float32)
    inputs[..., 2] = np.linspace(90, 110, 40 * 50).reshape(40, 50)  # 100 steps of 0.01 per grey level
    reference = predict(inputs)
    plain = Normalization(mean=(0.0, 0.0, 0.0))
    result = sensitivity(predict, inputs, reference, plain, seed=0)
    # pixels within 0.5 of 100 (5% of the ramp) flip with probability (0.5 - distance) / 1: 2.5% expected
    assert 0.96 < result.agreement < 0.99
    assert result.near_tie_share == pytest.approx(np.mean(np.abs(inputs[..., 2] - 100) < 0.1), abs=0.002)
    # the noise is drawn in grey levels: a model fed std-scaled inputs sees proportionally smaller noise
    scaled = sensitivity(lambda x: predict(x * 4.0), inputs, reference, Normalization(mean=(0.0, 0.0, 0.0),
                                                                                      std=(4.0, 4.0, 4.0)))
    assert scaled.agreement == pytest.approx(result.agreement, abs=0.01)


def test_each_precision_is_held_to_its_own_agreement_target():
    from segnet_edge.convert.options import Targets
    from segnet_edge.convert.parity import Parity, target_checks
    from segnet_edge.convert.registry import FORMATS

    # all-pixel agreement gates fp32 only; fp16 and int8 are held on the confident pixels
    parity = Parity(frames=1, max_abs_diff=0.1, mean_abs_diff=0.01, agreement=0.95, confident_agreement=0.99,
                    confident_pixels=1000)
    verdict = {name: target_checks(FORMATS[name], parity, Targets(), None)[0].passed
               for name in ("tflite-fp32", "tflite-fp16", "tflite-int8")}
    assert verdict == {"tflite-fp32": False, "tflite-fp16": False, "tflite-int8": True}
    sure = Parity(frames=1, max_abs_diff=0.1, mean_abs_diff=0.01, agreement=0.95, confident_agreement=0.996,
                  confident_pixels=1000)
    assert all(target_checks(FORMATS[name], sure, Targets(), None)[0].passed for name in ("tflite-fp16", "tflite-int8"))
    unsure = Parity(frames=1, max_abs_diff=0.1, mean_abs_diff=0.01, agreement=0.999, confident_agreement=0.98,
                    confident_pixels=1000)
    assert not target_checks(FORMATS["tflite-int8"], unsure, Targets(), None)[0].passed
