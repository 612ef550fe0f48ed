"""The TFLite exporter's checks on real converter output: Flex ops, float leftovers, ONE_HOT scales, QAT."""

from __future__ import annotations

import numpy as np
import pytest

from segnet_edge.convert.context import ConversionError


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


def test_float_tensor_in_an_int8_model_is_named(converted):
    from segnet_edge.convert.tflite import check_full_integer, inspect

    graph = inspect((converted.out / "model_fp32.tflite").read_bytes())
    with pytest.raises(ConversionError) as error:
        check_full_integer(graph)
    message = str(error.value)
    assert "not full-integer" in message and "float32" in message
    assert "CONV_2D in layer 'block1_conv1'" in message


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


def test_int8_needs_calibration_unless_qat():
    from segnet_edge.convert.tflite import convert_keras

    with pytest.raises(ConversionError, match="calibration"):
        convert_keras(tiny_unpool_model("select"), "int8", None)
