"""The TFLite exporter's checks on real converter output: Flex ops, float leftovers, ONE_HOT scales, QAT."""

from __future__ import annotations

import numpy as np
import pytest

from segnet_edge.convert.context import ConversionError
from tests.convert.conftest import facts


def tiny_unpool_model(mode: str):
    """conv -> argmax pool -> unpool(mode) -> conv on 8x8: the smallest graph with SegNet's unpooling."""
    from segnet_edge._tf import keras
    from segnet_edge.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv_in")(inputs)
    pooled, indices = MaxPoolingWithArgmax2D(name="pool")(x)
    x = MaxUnpooling2D((8, 8), mode=mode, name="unpool")([pooled, indices])
    outputs = keras.layers.Conv2D(2, 1, name="conv_out")(x)
    return keras.Model(inputs, outputs, name="tiny")


def representative():
    rng = np.random.default_rng(0)
    for _ in range(8):
        yield [rng.normal(0, 1, (1, 8, 8, 3)).astype(np.float32)]


def test_flex_op_fails_naming_the_op_and_layer():
    from segnet_edge._tf import keras, tf
    from segnet_edge.convert.tflite import convert_keras

    class ArgmaxPool(keras.layers.Layer):
        def call(self, x):
            return tf.nn.max_pool_with_argmax(x, 2, 2, "VALID")[0]

    inputs = keras.Input((8, 8, 2))
    outputs = ArgmaxPool(name="scatter_pool")(keras.layers.Conv2D(2, 1, name="conv")(inputs))
    with pytest.raises(ConversionError) as error:
        convert_keras(keras.Model(inputs, outputs), "fp32")
    message = str(error.value)
    assert "tf.MaxPoolWithArgmax" in message and "'scatter_pool'" in message and "Flex" in message
    assert "\n" not in message


def test_float_tensor_in_an_int8_model_is_named(converted, trained_model):
    from segnet_edge.convert.tflite import check_full_integer, inspect

    graph = inspect((converted.out / "model_fp32.tflite").read_bytes())
    with pytest.raises(ConversionError) as error:
        check_full_integer(graph)
    message = str(error.value)
    assert "not full-integer" in message and "float32" in message
    assert f"CONV_2D in layer '{facts(trained_model).first_conv}'" in message


def test_one_hot_int8_is_caught_and_select_is_full_integer():
    """TFLite's quantizer gives ONE_HOT's int8 output its consumer's scale: the reason int8 uses "select"."""
    from segnet_edge.convert.tflite import check_full_integer, convert_keras, inspect

    onehot = inspect(convert_keras(tiny_unpool_model("onehot"), "int8", representative))
    with pytest.raises(ConversionError, match="ONE_HOT in layer 'unpool' is mis-quantized"):
        check_full_integer(onehot)
    select = inspect(convert_keras(tiny_unpool_model("select"), "int8", representative, io_dtype="uint8"))
    check_full_integer(select)
    assert "SELECT_V2" in select.op_set and "ONE_HOT" not in select.op_set
    assert select.input_quantization.dtype == "uint8" == select.output_quantization.dtype
    assert select.per_channel_convs == select.convs == 2
    gather = inspect(convert_keras(tiny_unpool_model("gather"), "int8", representative))
    check_full_integer(gather)  # a table lookup keeps the identity's exact 0/1 quantization
    assert "GATHER" in gather.op_set and not {"ONE_HOT", "SELECT_V2"} & set(gather.op_set)


def _int8_outputs_and_scales(flatbuffer: bytes, frames: list[np.ndarray]) -> tuple[np.ndarray, dict[str, float]]:
    from segnet_edge._tf import tf

    interpreter = tf.lite.Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = given["quantization"]
    outputs = []
    for frame in frames:
        interpreter.set_tensor(given["index"], np.clip(np.round(frame / scale + zero), -128, 127).astype(np.int8))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(taken["index"]))
    scales = {t["name"]: t["quantization"][0] for t in interpreter.get_tensor_details()
              if t["dtype"] == np.int8 and t["quantization"][0] > 0}
    return np.stack(outputs), scales


def test_percentile_ranges_at_full_cover_give_the_converters_own_int8_model():
    """The calibrate-only -> ranges -> MLIR quantizer path must be the converter's own when no range changes:
    it catches a TensorFlow release that quantizes calibrated models differently from `convert()`."""
    from segnet_edge.convert.tflite import convert_keras, convert_keras_int8_percentile

    model = tiny_unpool_model("gather")
    frames = [frame for (frame,) in representative()]
    ours, change = convert_keras_int8_percentile(model, representative, 100.0)
    assert change.tensors > 0 and change.narrowed == 0
    assert "left all" in change.note(100.0)
    got, got_scales = _int8_outputs_and_scales(ours, frames)
    want, want_scales = _int8_outputs_and_scales(convert_keras(model, "int8", representative), frames)
    np.testing.assert_array_equal(got, want)
    assert got_scales == want_scales


def test_percentile_ranges_narrow_activation_steps_and_keep_the_function():
    from segnet_edge.convert.tflite import (
        check_full_integer,
        convert_keras,
        convert_keras_int8_percentile,
        inspect,
    )

    model = tiny_unpool_model("gather")
    frames = [frame for (frame,) in representative()]
    narrowed, change = convert_keras_int8_percentile(model, representative, 99.9)
    assert 0 < change.narrowed <= change.tensors and 0 < change.median_kept < 1
    assert f"narrowed {change.narrowed} of {change.tensors}" in change.note(99.9)
    check_full_integer(inspect(narrowed))
    got, got_scales = _int8_outputs_and_scales(narrowed, frames)
    minmax, minmax_scales = _int8_outputs_and_scales(convert_keras(model, "int8", representative), frames)
    assert got_scales.keys() == minmax_scales.keys()
    assert all(got_scales[name] <= minmax_scales[name] * (1 + 1e-6) for name in got_scales)  # never wider
    assert sum(got_scales[name] < 0.99 * minmax_scales[name] for name in got_scales) >= 2  # finer steps
    reference = np.concatenate([model(frame, training=False).numpy() for frame in frames])

    def error(flatbuffer: bytes, outputs: np.ndarray) -> float:
        q = inspect(flatbuffer).output_quantization
        return float(np.abs((outputs[:, 0].astype(np.float32) - q.zero_point) * q.scale - reference).mean())

    clipped, full_range = error(narrowed, got), error(convert_keras(model, "int8", representative), minmax)
    assert clipped < 0.02 * np.abs(reference).mean() and clipped < 1.5 * full_range, (clipped, full_range)


def test_int8_needs_calibration_unless_qat():
    from segnet_edge.convert.tflite import convert_keras

    with pytest.raises(ConversionError, match="calibration"):
        convert_keras(tiny_unpool_model("select"), "int8", None)
