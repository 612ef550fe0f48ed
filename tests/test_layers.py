"""The argmax pooling / unpooling layers against TensorFlow's own op, numpy, and the exporters."""

from __future__ import annotations

import numpy as np
import pytest

from segnet_edge._tf import keras, tf
from segnet_edge.layers import UNPOOL_MODES, MaxPoolingWithArgmax2D, MaxUnpooling2D

RNG = np.random.default_rng(0)


def reference_pool(x: np.ndarray):
    """Independent ceil-mode 2x2 pool: first maximum in row-major window order wins."""
    n, h, w, c = x.shape
    oh, ow = (h + 1) // 2, (w + 1) // 2
    pooled = np.zeros((n, oh, ow, c), x.dtype)
    index = np.zeros((n, oh, ow, c), np.int32)
    for b in range(n):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    best, best_k = None, 0
                    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                        y, xx = 2 * i + dy, 2 * j + dx
                        if y < h and xx < w and (best is None or x[b, y, xx, ch] > best):
                            best, best_k = x[b, y, xx, ch], k
                    pooled[b, i, j, ch], index[b, i, j, ch] = best, best_k
    return pooled, index


def scatter_unpool(pooled, argmax, shape):
    """The common unpooling: scatter values to tf.nn.max_pool_with_argmax's flat indices."""
    flat = tf.scatter_nd(tf.reshape(argmax, [-1, 1]), tf.reshape(pooled, [-1]), [int(np.prod(shape))])
    return tf.reshape(flat, shape).numpy()


@pytest.mark.parametrize("shape", [(1, 4, 4, 1), (3, 8, 6, 5), (2, 16, 12, 17)])
def test_pool_and_unpool_equal_tf_max_pool_with_argmax_and_scatter(shape):
    x = RNG.standard_normal(shape).astype(np.float32)
    pooled, index = MaxPoolingWithArgmax2D()(x)
    ref_pooled, ref_argmax = tf.nn.max_pool_with_argmax(x, 2, 2, "VALID", include_batch_in_index=True)
    np.testing.assert_array_equal(pooled.numpy(), ref_pooled.numpy())
    assert index.dtype == tf.int32 and index.shape == pooled.shape
    assert set(np.unique(index.numpy())) <= {0, 1, 2, 3}
    expected = scatter_unpool(ref_pooled, ref_argmax, shape)
    for mode in UNPOOL_MODES:
        np.testing.assert_array_equal(MaxUnpooling2D(mode=mode)([pooled, index]).numpy(), expected)


def test_index_is_the_row_major_position_inside_the_window():
    x = np.zeros((1, 2, 2, 4), np.float32)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        x[0, dy, dx, k] = 1.0
    _, index = MaxPoolingWithArgmax2D()(x)
    assert index.numpy().reshape(-1).tolist() == [0, 1, 2, 3]


def test_ties_pick_the_first_maximum_in_row_major_order():
    x = RNG.integers(0, 3, size=(2, 10, 12, 6)).astype(np.float32)  # many ties
    pooled, index = MaxPoolingWithArgmax2D()(x)
    ref_pooled, ref_index = reference_pool(x)
    np.testing.assert_array_equal(pooled.numpy(), ref_pooled)
    np.testing.assert_array_equal(index.numpy(), ref_index)
    constant = np.ones((1, 4, 4, 2), np.float32)
    assert np.all(MaxPoolingWithArgmax2D()(constant)[1].numpy() == 0)


def test_gradient_flows_only_to_the_first_maximum_even_with_ties():
    x = tf.constant(RNG.integers(0, 2, size=(2, 6, 6, 3)).astype(np.float32))
    layer = MaxPoolingWithArgmax2D()
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, _ = layer(x, training=True)
        loss = tf.reduce_sum(pooled * tf.constant(RNG.uniform(1, 2, pooled.shape).astype(np.float32)))
    grad = tape.gradient(loss, x).numpy()
    _, ref_index = reference_pool(x.numpy())
    mask = MaxUnpooling2D()([np.ones(ref_index.shape, np.float32), ref_index]).numpy()
    assert np.all(grad[mask == 0] == 0)
    assert np.all(grad[mask == 1] > 0)
    # through pool -> unpool the gradient reaches the input only at recorded positions
    with tf.GradientTape() as tape:
        tape.watch(x)
        pooled, index = layer(x, training=True)
        out = MaxUnpooling2D()([pooled, index])
        loss = tf.reduce_sum(out)
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), mask)


@pytest.mark.parametrize("size", [(5, 7), (45, 60), (23, 30), (3, 3)])
def test_odd_sizes_pool_in_ceil_mode_and_unpool_back(size):
    h, w = size
    x = RNG.standard_normal((2, h, w, 3)).astype(np.float32)
    pooled, index = MaxPoolingWithArgmax2D()(x)
    assert pooled.shape[1:3] == ((h + 1) // 2, (w + 1) // 2)
    ref_pooled, ref_index = reference_pool(x)
    np.testing.assert_array_equal(pooled.numpy(), ref_pooled)
    np.testing.assert_array_equal(index.numpy(), ref_index)
    # the argmax never points at padding
    rows = 2 * np.arange(pooled.shape[1])[None, :, None, None] + index.numpy() // 2
    cols = 2 * np.arange(pooled.shape[2])[None, None, :, None] + index.numpy() % 2
    assert rows.max() < h and cols.max() < w
    out = MaxUnpooling2D((h, w))([pooled, index]).numpy()
    assert out.shape == x.shape
    # every pooled maximum lands back where it was found
    kept = out != 0
    np.testing.assert_array_equal(out[kept], x[kept])
    assert kept.sum() == np.count_nonzero(pooled.numpy())


def test_negative_inputs_at_odd_edges_do_not_lose_to_padding():
    x = -np.arange(1, 1 + 3 * 3, dtype=np.float32).reshape(1, 3, 3, 1)
    pooled, index = MaxPoolingWithArgmax2D()(x)
    np.testing.assert_array_equal(pooled.numpy()[0, :, :, 0], [[-1, -3], [-7, -9]])
    np.testing.assert_array_equal(index.numpy()[0, :, :, 0], [[0, 0], [0, 0]])


def test_unpool_rejects_an_output_size_that_does_not_match():
    pooled, index = MaxPoolingWithArgmax2D()(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        MaxUnpooling2D((9, 4))([pooled, index])


def test_layers_serialise_through_get_config():
    layer = MaxUnpooling2D((23, 30), mode="select", name="u")
    clone = MaxUnpooling2D.from_config(layer.get_config())
    assert clone.output_size == (23, 30) and clone.mode == "select"
    with pytest.raises(ValueError, match="unknown unpool mode"):
        MaxUnpooling2D(mode="scatter")


def _pool_unpool_model(size=(10, 14), channels=4, mode="onehot"):
    inputs = keras.Input((*size, 3))
    x = keras.layers.Conv2D(channels, 3, padding="same")(inputs)
    pooled, index = MaxPoolingWithArgmax2D()(x)
    y = keras.layers.Conv2D(channels, 3, padding="same")(pooled)
    pooled2, index2 = MaxPoolingWithArgmax2D()(y)
    up = MaxUnpooling2D(tuple(y.shape[1:3]), mode=mode)([pooled2, index2])
    up = MaxUnpooling2D(size, mode=mode)([up, index])
    return keras.Model(inputs, keras.layers.Conv2D(2, 1)(up))


def _tflite_ops(flatbuffer: bytes) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    return {op["op_name"] for op in interpreter._get_ops_details()}


@pytest.mark.parametrize("mode", ["onehot", "select"])
def test_converts_to_tflite_builtins_only_and_to_full_int8(mode):
    model = _pool_unpool_model(mode=mode)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex allowed
    ops = _tflite_ops(converter.convert())
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    assert {"SPACE_TO_DEPTH", "ARG_MAX", "DEPTH_TO_SPACE"} <= ops
    if mode == "select":
        return  # equal+where is the ONNX Runtime / TensorRT 8.2 form: TFLite keeps SELECT_V2 in float

    def representative():
        for _ in range(8):
            yield [RNG.standard_normal((1, 10, 14, 3)).astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    flatbuffer = converter.convert()  # raises if any op has no int8 kernel
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    float_tensors = [t["name"] for t in interpreter.get_tensor_details() if t["dtype"] == np.float32]
    assert float_tensors == [], float_tensors


def test_tf_max_pool_with_argmax_needs_flex_ops_which_is_why_these_layers_exist():
    inputs = keras.Input((8, 8, 1))
    pooled = keras.layers.Lambda(lambda t: tf.nn.max_pool_with_argmax(t, 2, 2, "VALID")[0])(inputs)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras.Model(inputs, pooled))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with pytest.raises(Exception, match="(?i)MaxPoolWithArgmax|flex|select"):
        converter.convert()


def test_onnx_graph_has_no_maxunpool_scatter_or_indexed_maxpool():
    import tf2onnx

    model = _pool_unpool_model(mode="select")
    spec = [tf.TensorSpec((1, 10, 14, 3), tf.float32, name="image")]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=17)
    ops = {node.op_type for node in proto.graph.node}
    assert not ops & {"MaxUnpool", "ScatterND", "ScatterElements"}, ops
    # a plain MaxPool computes the pooled values; one with an Indices output would be the unparsable form
    assert all(len([o for o in node.output if o]) == 1 for node in proto.graph.node if node.op_type == "MaxPool")
    assert "DepthToSpace" in ops and "ArgMax" in ops
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    x = RNG.standard_normal((1, 10, 14, 3)).astype(np.float32)
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: x})[0], model(x).numpy(),
                               rtol=1e-4, atol=1e-5)


def test_uint8_indices_hold_the_int32_indices():
    x = RNG.integers(0, 3, size=(2, 9, 11, 5)).astype(np.float32)  # ties and odd sizes
    pooled32, index32 = MaxPoolingWithArgmax2D()(x)
    pooled8, index8 = MaxPoolingWithArgmax2D(index_dtype="uint8")(x)
    assert index32.dtype == tf.int32 and index8.dtype == tf.uint8
    np.testing.assert_array_equal(pooled8.numpy(), pooled32.numpy())
    np.testing.assert_array_equal(index8.numpy(), index32.numpy())
    for mode in UNPOOL_MODES:
        np.testing.assert_array_equal(MaxUnpooling2D((9, 11), mode=mode)([pooled8, index8]).numpy(),
                                      MaxUnpooling2D((9, 11), mode=mode)([pooled32, index32]).numpy())
    assert MaxPoolingWithArgmax2D.from_config(MaxPoolingWithArgmax2D(index_dtype="uint8").get_config()).index_dtype \
        == "uint8"
    with pytest.raises(ValueError, match="unknown index dtype"):
        MaxPoolingWithArgmax2D(index_dtype="int4")


def test_uint8_index_segnet_is_bit_identical_in_keras_int8_tflite_and_onnx():
    """Same weights, the two index forms: identical Keras outputs, identical int8 TFLite outputs (one CAST per
    pool added, every tensor still integer), identical ONNX Runtime outputs; TensorRT's check refuses the uint8
    ONNX graph, which is why ONNX graphs keep int32."""
    import tf2onnx
    from ai_edge_litert.interpreter import Interpreter

    from segnet_edge.convert.tflite import check_full_integer, convert_keras, inspect
    from segnet_edge.convert.trt_support import check_onnx_for_tensorrt
    from segnet_edge.models import ModelConfig, build_model, with_index_dtype, with_unpool_mode

    keras.utils.set_random_seed(3)
    int32_model = with_unpool_mode(build_model(ModelConfig("segnet", (34, 50), 3, 0.125)), "gather")
    uint8_model = with_index_dtype(int32_model, "uint8")
    assert [layer.index_dtype for layer in uint8_model.layers if isinstance(layer, MaxPoolingWithArgmax2D)] == \
        ["uint8"] * 5
    x = RNG.standard_normal((3, 34, 50, 3)).astype(np.float32)
    np.testing.assert_array_equal(uint8_model(x, training=False).numpy(), int32_model(x, training=False).numpy())

    def representative():
        for frame in x:
            yield [frame[None]]

    outputs = {}
    for name, model in (("int32", int32_model), ("uint8", uint8_model)):
        flatbuffer = convert_keras(model, "int8", representative, "int8")
        graph = inspect(flatbuffer)
        check_full_integer(graph)
        casts = [(op.tensors[0][1], op.tensors[-1][1]) for op in graph.ops if op.name == "CAST"]
        # each pool narrows its ARG_MAX output, each unpool widens it for its GATHER
        assert sorted(casts) == ([] if name == "int32" else [("int32", "uint8")] * 5 + [("uint8", "int32")] * 5), casts
        interpreter = Interpreter(model_content=flatbuffer)
        interpreter.allocate_tensors()
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        scale, zero = inp["quantization"]
        runs = []
        for frame in x:
            interpreter.set_tensor(inp["index"], np.clip(np.round(frame / scale) + zero, -128, 127).astype(np.int8)[None])
            interpreter.invoke()
            runs.append(interpreter.get_tensor(out["index"]).copy())
        outputs[name] = np.concatenate(runs)
    np.testing.assert_array_equal(outputs["uint8"], outputs["int32"])

    import onnxruntime as ort

    spec = [tf.TensorSpec((1, 34, 50, 3), tf.float32, name="image")]
    onnx_out = {}
    for name, model in (("int32", with_unpool_mode(int32_model, "select")),
                        ("uint8", with_unpool_mode(uint8_model, "select"))):
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=13)
        problems = check_onnx_for_tensorrt(proto, "8.6")
        assert bool([p for p in problems if "Cast to uint8" in p]) == (name == "uint8"), problems
        session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        onnx_out[name] = np.concatenate([session.run(None, {"image": frame[None]})[0] for frame in x])
    np.testing.assert_array_equal(onnx_out["uint8"], onnx_out["int32"])
