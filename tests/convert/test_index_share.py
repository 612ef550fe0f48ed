"""The pooling-index attribution of int8 disagreement, on the converted tiny SegNet's real interpreters."""

from __future__ import annotations

import numpy as np

from tests.convert.conftest import INPUT_SIZE, facts


def _inputs_and_model(converted, trained_model, scene_dataset):
    from segnet_edge.convert.parity import parity_frames
    from segnet_edge.device.artifact_metadata import read_artifact_metadata
    from segnet_edge.model_io import load_model
    from segnet_edge.models import drop_input_lrn

    metadata = read_artifact_metadata(converted.out / "model_int8.tflite")
    # the Keras graph the artifacts were built from: it starts where their preprocessing ends
    return parity_frames(metadata, None, scene_dataset, "val", 6).inputs, drop_input_lrn(load_model(trained_model))[0]


def test_float_indices_from_the_fp32_model_reproduce_keras_exactly(converted, trained_model, scene_dataset):
    """fp32 TFLite computes the same indices as Keras: fed back, the twin must agree on every pixel.
    A wrong mapping of ARG_MAX outputs to pooling levels, or a wrong reshape, breaks this."""
    from segnet_edge.convert.index_share import measure_index_share

    inputs, model = _inputs_and_model(converted, trained_model, scene_dataset)
    path = converted.out / "model_fp32.tflite"
    share = measure_index_share(model, path, inputs)
    assert share is not None and len(share.index_disagreement) == facts(trained_model).pooling_levels
    assert share.index_only_agreement == 1.0
    assert max(share.index_disagreement) < 1e-3
    assert share.artifact_agreement > 0.999


def test_int8_indices_are_measured_and_reported(converted, trained_model, scene_dataset):
    from segnet_edge.convert.index_share import measure_index_share

    inputs, model = _inputs_and_model(converted, trained_model, scene_dataset)
    path = converted.out / "model_int8.tflite"
    share = measure_index_share(model, path, inputs)
    assert 0 < max(share.index_disagreement) < 0.5  # int8 does move some indices, not most
    assert 0.9 < share.index_only_agreement <= 1.0
    reported = converted.artifact("tflite-int8")["pooling_indices"]
    assert reported is not None and len(reported["index_disagreement"]) == facts(trained_model).pooling_levels
    # the report's run measured both on the same VAL_FRAMES frames
    parity = converted.artifact("tflite-int8")["parity"]["agreement"]
    assert abs(reported["artifact_agreement"] - parity) < 1e-6
    assert "pooling indices: float Keras fed" in (converted.out / "report.md").read_text()
    assert converted.artifact("onnx-int8").get("pooling_indices") is None


def test_a_model_without_argmax_pooling_has_no_index_share(converted):
    from segnet_edge._tf import keras
    from segnet_edge.convert.index_share import measure_index_share

    inputs = keras.Input((*INPUT_SIZE, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    assert measure_index_share(plain, converted.out / "model_int8.tflite", np.zeros((1, *INPUT_SIZE, 3))) is None
