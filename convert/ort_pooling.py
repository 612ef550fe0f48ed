"""SegNet's argmax pooling as ONNX MaxPool(Indices) + MaxUnpool, for ONNX Runtime only.

The portable graph (model.onnx) computes the 2-bit window index with SpaceToDepth +
ArgMax and unpools with Equal/Where (or OneHot) + DepthToSpace, because TensorRT's
parser takes neither MaxPool's Indices output nor MaxUnpool. In ONNX Runtime that
costs 23-29% over plain pooling on the full-size SegNet (tf2onnx wraps the NHWC index
ops in transposes), while its native MaxPool-with-indices and MaxUnpool kernels cost
3-7% (bench/run.py's pooling table). Same function: ONNX's MaxPool keeps the first
maximum of each window in row-major order, as MaxPoolingWithArgmax2D does.

How: export a stand-in twin of the model whose pooling is plain max pooling and whose
unpooling is nearest upsampling (same weights, so tf2onnx emits MaxPool and Resize at
exactly the places SegNet pools and unpools), then give every MaxPool its Indices output
and turn every Resize into a MaxUnpool reading the indices of its encoder level.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The unpooling formulation recorded in these artifacts' metadata.
ORT_UNPOOL_MODE = "maxunpool"


class PoolingRewriteError(ValueError):
    """The ONNX graph does not have the pooling layout the Keras model promises."""


def stand_in_layers():
    """(pool, unpool) Keras layers with plain pooling, defined lazily so importing needs no TensorFlow."""
    from segnet_edge._tf import keras, tf

    class PlainPool2D(keras.layers.Layer):
        """2x2 max pooling (ceil mode via SAME padding); returns the pooled map twice so the unpooling
        layer's call signature is unchanged. Nothing reads the second copy: no index is computed."""

        def call(self, inputs):
            pooled = tf.nn.max_pool2d(inputs, 2, 2, "SAME")
            return [pooled, pooled]

        def compute_output_shape(self, input_shape):
            n, h, w, c = input_shape
            shape = tf.TensorShape((n, (h + 1) // 2, (w + 1) // 2, c))
            return [shape, shape]

        def compute_mask(self, inputs, mask=None):
            return [None, None]

    class NearestUpsample2D(keras.layers.Layer):
        """2x nearest-neighbour upsampling, cropped to the pre-pooling size; ignores the indices."""

        def __init__(self, output_size=None, **kwargs):
            super().__init__(**kwargs)
            self.output_size = output_size

        def call(self, inputs):
            values, _ = inputs
            _, h, w, _ = values.shape
            out = tf.image.resize(values, (2 * h, 2 * w), method="nearest")  # what keras UpSampling2D does
            target_h, target_w = self.output_size or (2 * h, 2 * w)
            if (target_h, target_w) != (2 * h, 2 * w):
                out = out[:, :target_h, :target_w, :]
            return out

    return PlainPool2D, NearestUpsample2D


def with_stand_in_pooling(model):
    """`model` with plain pooling and nearest upsampling in place of SegNet's argmax pair; same weights."""
    return with_pooling_layers(model, *stand_in_layers())


def with_pooling_layers(model, pool_cls, unpool_cls):
    """`model` with every argmax pooling layer made by `pool_cls(name=)` and every unpooling layer by
    `unpool_cls(output_size, name=)`; every other layer and weight the same."""
    from segnet_edge._tf import keras
    from segnet_edge.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D

    def clone(layer):
        if isinstance(layer, MaxPoolingWithArgmax2D):
            return pool_cls(name=layer.name)
        if isinstance(layer, MaxUnpooling2D):
            return unpool_cls(layer.output_size, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


@dataclass(frozen=True)
class PoolingPair:
    """One encoder level: which pooling layer's indices an unpooling layer reads."""

    pool: str  # Keras layer names
    unpool: str


def pooling_pairs(model) -> tuple[list[str], list[PoolingPair]]:
    """Pool layer names in graph order, and each unpool layer (in graph order) with the pool it reads."""
    from segnet_edge.layers import MaxPoolingWithArgmax2D, MaxUnpooling2D

    pools = [layer.name for layer in model.layers if isinstance(layer, MaxPoolingWithArgmax2D)]
    pairs = []
    for layer in model.layers:
        if not isinstance(layer, MaxUnpooling2D):
            continue
        source = layer.input[1]._keras_history.layer  # the [values, indices] call's indices tensor
        if not isinstance(source, MaxPoolingWithArgmax2D):
            raise PoolingRewriteError(f"{layer.name}: its indices do not come from an argmax pooling layer")
        pairs.append(PoolingPair(source.name, layer.name))
    return pools, pairs


def rewrite_pooling(proto, pools: list[str], pairs: list[PoolingPair]):
    """The stand-in graph `proto` with index-recording MaxPools and MaxUnpools, in place; returns it.

    MaxPool nodes are matched to pool layers by the layer name tf2onnx keeps in node names; Resize
    nodes (tf2onnx names them afresh) to unpool layers by graph order, and each match is checked by
    shape. Odd sizes (ceil mode): the pool reads an edge-padded copy, so its flat indices address the
    same even-sized map MaxUnpool writes and the graph's own Slice crops back.
    """
    import numpy as np
    from onnx import helper, numpy_helper, shape_inference

    graph = proto.graph
    inferred = shape_inference.infer_shapes(proto).graph
    shapes = {v.name: [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
              for v in (*inferred.value_info, *inferred.input, *inferred.output)}
    nodes = list(graph.node)
    max_pools = [n for n in nodes if n.op_type == "MaxPool"]
    resizes = [n for n in nodes if n.op_type == "Resize"]
    if len(max_pools) != len(pools) or len(resizes) != len(pairs):
        raise PoolingRewriteError(f"expected {len(pools)} MaxPool and {len(pairs)} Resize nodes, found "
                                  f"{len(max_pools)} and {len(resizes)}")
    by_layer = {}
    for name in pools:
        matches = [n for n in max_pools if f"/{name}/" in f"/{n.name}/"]
        if len(matches) != 1:
            raise PoolingRewriteError(f"{name}: {len(matches)} MaxPool nodes carry its name, expected 1")
        by_layer[name] = matches[0]

    indices: dict[str, tuple[str, list[int]]] = {}  # pool layer -> (indices tensor, unpooled NCHW shape)
    for name, node in by_layer.items():
        source_shape = shapes.get(node.input[0])
        if not source_shape or None in source_shape or len(source_shape) != 4:
            raise PoolingRewriteError(f"{node.name}: input shape unknown ({source_shape}); export a static size")
        pads = next((list(a.ints) for a in node.attribute if a.name == "pads"), [0, 0, 0, 0])
        if pads[0] or pads[1]:
            raise PoolingRewriteError(f"{node.name}: pads {pads} at the top/left; SegNet's ceil mode pads only the end")
        padded = [*source_shape[:2], source_shape[2] + pads[2], source_shape[3] + pads[3]]
        if any(pads):
            pads_name, padded_name = f"{node.name}/edge_pads", f"{node.name}/edge_padded"
            graph.initializer.append(numpy_helper.from_array(
                np.array([0, 0, 0, 0, 0, 0, pads[2], pads[3]], np.int64), pads_name))
            nodes.insert(nodes.index(node), helper.make_node("Pad", [node.input[0], pads_name], [padded_name],
                                                             mode="edge", name=f"{node.name}/edge_pad"))
            node.input[0] = padded_name
            for attribute in node.attribute:
                if attribute.name == "pads":
                    del attribute.ints[:]
                    attribute.ints.extend([0, 0, 0, 0])
        index_name = f"{node.name}/indices"
        node.output.append(index_name)
        indices[name] = (index_name, padded)

    for pair, resize in zip(pairs, resizes):
        index_name, padded = indices[pair.pool]
        values_shape = shapes.get(resize.input[0])
        if values_shape != [padded[0], padded[1], padded[2] // 2, padded[3] // 2]:
            raise PoolingRewriteError(f"{pair.unpool}: the Resize in its place reads {values_shape}, but "
                                      f"{pair.pool} pools to {[*padded[:2], padded[2] // 2, padded[3] // 2]}")
        shape_name = f"{pair.unpool}/output_shape"
        graph.initializer.append(numpy_helper.from_array(np.array(padded, np.int64), shape_name))
        unpool = helper.make_node("MaxUnpool", [resize.input[0], index_name, shape_name], list(resize.output),
                                  name=f"{pair.unpool}/MaxUnpool", kernel_shape=[2, 2], strides=[2, 2])
        nodes[nodes.index(resize)] = unpool

    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]  # the Resizes' roi/scales
    for init in unused:
        graph.initializer.remove(init)
    return proto


def _wiring(nodes) -> tuple[dict, dict[str, list]]:
    """(tensor name -> the node writing it, tensor name -> the nodes reading it)."""
    producers = {name: node for node in nodes for name in node.output}
    readers: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return producers, readers


def softmax_channels_last(proto):
    """Softmax over NCHW channels, then the transpose to NHWC -> the transpose, then softmax over the last axis.

    Same values. tf2onnx leaves the softmax in NCHW; ONNX Runtime's NHWC layout pass turns that around
    in the plain graph but not behind a MaxUnpool, and its int8 softmax over a strided axis costs
    ~25 ms per full-size frame against ~3 ms over a contiguous one.
    """
    nodes = list(proto.graph.node)
    producers, readers = _wiring(nodes)
    for transpose in [n for n in nodes if n.op_type == "Transpose"]:
        perm = next((list(a.ints) for a in transpose.attribute if a.name == "perm"), None)
        softmax = producers.get(transpose.input[0])
        if perm != [0, 2, 3, 1] or softmax is None or softmax.op_type != "Softmax":
            continue
        axis = next((a for a in softmax.attribute if a.name == "axis"), None)
        if axis is None or axis.i != 1 or len(readers.get(softmax.output[0], [])) != 1:
            continue
        between, out = softmax.output[0], transpose.output[0]
        transpose.input[0], transpose.output[0] = softmax.input[0], between
        softmax.input[0], softmax.output[0] = between, out
        axis.i = 3
        first, second = sorted((nodes.index(transpose), nodes.index(softmax)))
        nodes[first], nodes[second] = transpose, softmax
    del proto.graph.node[:]
    proto.graph.node.extend(nodes)
    return proto


def export_ort_graph(model, size: tuple[int, int], batch: int, opset: int):
    """Keras SegNet -> ONNX graph with MaxPool(Indices) + MaxUnpool (ONNX Runtime only, not TensorRT)."""
    from segnet_edge.convert.onnx import export_graph

    pools, pairs = pooling_pairs(model)
    proto = export_graph(with_stand_in_pooling(model), size, batch, opset)
    return softmax_channels_last(rewrite_pooling(proto, pools, pairs))


def pool_quantized_values(proto) -> int:
    """In a QDQ graph, let each index-recording MaxPool read the quantized tensor itself; returns how many.

    The quantizer wraps it as DequantizeLinear -> MaxPool (float) -> QuantizeLinear with the same scale
    and zero point: a max and its position are the same on the uint8 codes, so the float round trip
    (a full-resolution dequantize and requantize per level) goes. 15% of the full-size int8 frame.
    """
    from onnx import numpy_helper

    graph = proto.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}

    def same(a: str, b: str) -> bool:
        return a == b or (a in constants and b in constants and constants[a].dtype == constants[b].dtype
                          and (constants[a] == constants[b]).all())

    nodes = list(graph.node)
    rewired = 0
    for pool in [n for n in nodes if n.op_type == "MaxPool" and len(n.output) == 2]:
        producers, readers = _wiring(nodes)  # afresh: the previous pool's rewiring changed them
        dequantize = producers.get(pool.input[0])
        if dequantize is None or dequantize.op_type != "DequantizeLinear" or len(dequantize.input) != 3:
            continue
        requantize = readers.get(pool.output[0], [])
        if not requantize or any(q.op_type != "QuantizeLinear" or len(q.input) != 3 or not same(q.input[1], dequantize.input[1])
                                 or not same(q.input[2], dequantize.input[2]) for q in requantize):
            continue
        pool.input[0] = dequantize.input[0]
        for q in requantize:
            for node in readers.get(q.output[0], []):
                node.input[:] = [pool.output[0] if name == q.output[0] else name for name in node.input]
            nodes.remove(q)
        if len(readers[dequantize.output[0]]) == 1:
            nodes.remove(dequantize)
        rewired += 1
    del graph.node[:]
    graph.node.extend(nodes)
    stale = {name for node in nodes if node.op_type == "MaxPool" for name in node.output}
    kept = [v for v in graph.value_info if v.name not in stale]  # their recorded type was float
    del graph.value_info[:]
    graph.value_info.extend(kept)
    return rewired
