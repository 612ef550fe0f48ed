"""A quantization-aware model converts to int8 with no calibration set: the ranges travel in the model.

A tiny tfmot-annotated conv net keeps this fast; the SegNet-specific QuantizeConfigs
are tested where they live (segnet_edge/optimize). Loading a QAT file needs those
configs' scope, so the end-to-end test waits for that module.
"""

from __future__ import annotations

import numpy as np
import pytest

SIZE = (8, 8)


@pytest.fixture(scope="module")
def tiny_qat():
    from segnet_edge._tf import keras
    from segnet_edge.optimize._tfmot import tfmot

    keras.utils.set_random_seed(0)
    inputs = keras.Input((*SIZE, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    outputs = keras.layers.Softmax(name="probabilities")(keras.layers.Conv2D(3, 1, name="classifier")(x))
    plain = keras.Model(inputs, outputs)
    qat = tfmot.quantization.keras.quantize_model(plain)
    x = np.random.default_rng(0).normal(0, 1, (16, *SIZE, 3)).astype(np.float32)
    for start in range(0, 16, 4):  # forward passes in training mode learn the activation ranges
        qat(x[start:start + 4], training=True)
    return plain, qat


def test_qat_model_converts_to_full_integer_without_calibration(tiny_qat):
    from segnet_edge.convert.tflite import check_full_integer, convert_keras, inspect, is_qat_model

    plain, qat = tiny_qat
    assert is_qat_model(qat) and not is_qat_model(plain)
    graph = inspect(convert_keras(qat, "int8", None, qat=True))
    check_full_integer(graph)
    assert graph.input_quantization.dtype == "int8" and graph.output_quantization.dtype == "int8"


def test_qat_file_through_convert_model(tiny_qat, tmp_path):
    """Detected from the file's config (no TensorFlow), loaded, converted with no --calib."""
    pytest.importorskip("segnet_edge.optimize.quantize_configs", reason="QAT loading scope not present yet")
    from segnet_edge.convert import convert_model
    from segnet_edge.device.artifact_metadata import read_artifact_metadata
    from segnet_edge.device.metadata import ModelMetadata, default_palette
    from segnet_edge.model_io import save_model

    path = tmp_path / "qat.h5"
    save_model(tiny_qat[1], path, ModelMetadata(("a", "b", "c"), default_palette(3), SIZE, arch="segnet"))
    out = tmp_path / "out"
    report = convert_model(path, out, ["tflite-int8"], None)
    assert report.qat and report.calibration is None and report.parity_frames is None
    artifact = report.artifact("tflite-int8")
    assert "no calibration" in artifact.notes[0]
    assert all(c.passed for c in artifact.checks)
    meta = read_artifact_metadata(out / "model_int8.tflite")
    assert meta.input_quantization.dtype == "int8" and meta.input_quantization.scale > 0
