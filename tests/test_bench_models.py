"""What the benchmark counts and compares: MACs by hand, the pooling variants, the in-model argmax."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segnet_edge._tf import keras  # noqa: E402
from segnet_edge.models import ModelConfig, build_model, count_macs, with_label_output, with_unpool_mode  # noqa: E402


def test_count_macs_equals_a_hand_count():
    # SegNet-Basic, 16x16 input, alpha 1/16 -> 4 filters, 2 classes; every conv is 7x7 but the 1x1 classifier.
    model = build_model(ModelConfig("segnet-basic", (16, 16), 2, alpha=0.0625))
    k = 7 * 7
    encoder = 16 * 16 * 4 * k * 3 + 8 * 8 * 4 * k * 4 + 4 * 4 * 4 * k * 4 + 2 * 2 * 4 * k * 4
    decoder = 2 * 2 * 4 * k * 4 + 4 * 4 * 4 * k * 4 + 8 * 8 * 4 * k * 4 + 16 * 16 * 4 * k * 4
    classifier = 16 * 16 * 2 * 1 * 4
    assert encoder + decoder + classifier == 484_992
    assert count_macs(model) == 484_992


def test_the_full_size_segnet_is_the_104_gmac_model():
    model = build_model(ModelConfig("segnet", (352, 480), 11))
    assert count_macs(model) == pytest.approx(104.3e9, rel=0.002)


def _small():
    keras.utils.set_random_seed(0)
    return build_model(ModelConfig("segnet", (45, 60), 5, alpha=0.125))  # odd sizes: ceil-mode levels


def test_tf_argmax_variant_computes_exactly_what_ours_does_and_plain_keeps_the_shapes():
    from bench.variants import index_memory, with_pooling

    model = _small()
    x = np.random.default_rng(0).normal(0, 40, (2, 45, 60, 3)).astype(np.float32)
    ours = model(x, training=False).numpy()
    np.testing.assert_array_equal(with_pooling(model, "tf-argmax")(x, training=False).numpy(), ours)
    plain = with_pooling(model, "plain")
    assert plain(x, training=False).shape == ours.shape
    assert not any("Argmax" in type(layer).__name__ or "Unpool" in type(layer).__name__ for layer in plain.layers)
    assert index_memory(model).positions == sum(int(np.prod(layer.output[0].shape[1:])) for layer in model.layers
                                                if type(layer).__name__ == "MaxPoolingWithArgmax2D")


def test_label_output_equals_the_argmax_of_the_probabilities_in_keras_and_tflite():
    from ai_edge_litert.interpreter import Interpreter

    from segnet_edge.convert.tflite import convert_keras

    model = _small()
    labels_model = with_label_output(model)
    assert "probabilities" not in [layer.name for layer in labels_model.layers]  # the softmax is gone too
    x = np.random.default_rng(1).normal(0, 40, (1, 45, 60, 3)).astype(np.float32)
    probabilities = model(x, training=False).numpy()
    labels = labels_model(x, training=False).numpy()
    assert labels.dtype == np.uint8 and labels.shape == (1, 45, 60)
    np.testing.assert_array_equal(labels, probabilities.argmax(-1))
    # (the one_hot form goes through TFLite in test_convert_output_labels_end_to_end)
    interpreter = Interpreter(model_content=convert_keras(with_label_output(with_unpool_mode(model, "gather")), "fp32"))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    out = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, probabilities.argmax(-1))


def test_gather_unpooling_is_exact_in_full_integer_tflite_with_ties():
    """The int8 TFLite unpooling: every pooled value back at its first-maximum position, zeros elsewhere."""
    from ai_edge_litert.interpreter import Interpreter

    from segnet_edge.convert.tflite import check_full_integer, convert_keras, inspect
    from segnet_edge.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D

    inputs = keras.Input((12, 16, 8))
    pooled, index = MaxPoolingWithArgmax2D()(inputs)
    model = keras.Model(inputs, MaxUnpooling2D((12, 16), mode="gather")([pooled + 1.0, index]))
    rng = np.random.default_rng(2)

    def representative():
        for _ in range(4):
            yield [rng.integers(0, 4, (1, 12, 16, 8)).astype(np.float32)]

    flatbuffer = convert_keras(model, "int8", representative, "int8")
    check_full_integer(inspect(flatbuffer))
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    x = rng.integers(0, 4, (1, 12, 16, 8)).astype(np.float32)  # integer values: ties everywhere
    scale, zero = inp["quantization"]
    interpreter.set_tensor(inp["index"], np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8))
    interpreter.invoke()
    o_scale, o_zero = out["quantization"]
    got = (interpreter.get_tensor(out["index"]).astype(np.float32) - o_zero) * o_scale
    expected = model(x).numpy()
    np.testing.assert_array_equal(np.abs(got) > 0.5, expected != 0)  # positions: first maximum, as tf's argmax
    assert np.abs(got - expected).max() <= 2 * o_scale


@pytest.mark.parametrize("output", ["labels"])
def test_convert_output_labels_end_to_end(tmp_path, output):
    """`convert --output labels`: uint8 label maps, metadata says so, the board's backends accept them."""
    from segnet_edge.convert import ConvertOptions, convert_model
    from segnet_edge.device.artifact_metadata import read_artifact_metadata
    from segnet_edge.device.metadata import ModelMetadata, default_palette
    from segnet_edge.model_io import save_model

    keras.utils.set_random_seed(0)
    size = (32, 48)
    model = build_model(ModelConfig("segnet", size, 3, alpha=0.125))
    path = save_model(model, tmp_path / "m.h5", ModelMetadata(("a", "b", "c"), default_palette(3), size, alpha=0.125))
    from segnet_edge.calibration.representative import CalibrationRecipe, CalibrationSet

    frames = np.random.default_rng(3).integers(0, 256, (4, *size, 3), dtype=np.uint8)
    calib = CalibrationSet(CalibrationRecipe(str(tmp_path), size, 4), frames, ["f"] * 4, frames[:2], ["h"] * 2)
    report = convert_model(path, tmp_path / "out", ["tflite-fp32", "onnx-fp32"], calib,
                           options=ConvertOptions(output=output, parity_frames=2))
    for artifact in report.artifacts:
        assert artifact.parity.agreement == 1.0, artifact.format
        meta = read_artifact_metadata(tmp_path / "out" / artifact.file)
        assert meta.output == "labels"
    with pytest.raises(Exception, match="--output"):
        ConvertOptions(output="logits")


def test_variant_artifacts_take_the_activation_ranges_convert_takes(tmp_path, camvid_sample):
    """The pooling-overhead rows compare like with like: a variant's int8 TFLite model gets the percentile
    ranges `segnet-edge convert` gives ours, and its QDQ graph ONNX Runtime's chunk-read calibration."""
    from ai_edge_litert.interpreter import Interpreter

    from bench.artifacts import export_variant
    from bench.variants import with_pooling
    from segnet_edge.calibration import CalibrationRecipe, build_calibration_set
    from segnet_edge.calibration.tflite import representative_dataset
    from segnet_edge.convert.options import ConvertOptions
    from segnet_edge.convert.tflite import check_full_integer, convert_keras_int8_percentile, inspect
    from segnet_edge.device.metadata import ModelMetadata

    assert ConvertOptions().tflite_calib == "percentile"
    calib = build_calibration_set(CalibrationRecipe(source=str(camvid_sample), size=(45, 60), count=4, holdout=0))
    metadata = ModelMetadata(tuple(f"c{i}" for i in range(5)), ((0, 0, 0),) * 5, (45, 60))
    plain = with_pooling(_small(), "plain")
    paths = export_variant(plain, metadata, "plain", tmp_path, calib, formats=("tflite-int8", "onnx-int8"),
                           log=lambda _: None)
    flatbuffer = paths["tflite-int8"].read_bytes()
    check_full_integer(inspect(flatbuffer))
    want, _ = convert_keras_int8_percentile(plain, representative_dataset(calib, metadata.normalization), 99.99)
    scales = [{t["name"]: t["quantization"] for t in Interpreter(model_content=content).get_tensor_details()}
              for content in (flatbuffer, want)]
    assert scales[0] == scales[1]
    assert paths["onnx-int8"].stat().st_size > 0
