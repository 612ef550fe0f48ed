"""A QAT model's fake-quant nodes as the QDQ graph TensorRT takes: int8, zero point 0, per-channel weights.

tf2onnx turns each activation fake-quant into QuantizeLinear/DequantizeLinear with uint8 codes and folds
the weight fake-quants into float weights that sit on their int8 grid. With symmetric ranges
(`segnet-edge quantize --activations symmetric`, the default) every activation zero point is 128, and
uint8 code q is int8 code q - 128 at the same scale: the same values and the same clamp, so the graph
becomes zero-point-0 int8 exactly. Each convolution's weights get back their DequantizeLinear (int8,
one scale per output channel, max |w| / 127, which the fake-quant grid maps onto exactly), which
TensorRT needs to run the convolution in int8.

Asymmetric ranges (tfmot's default) have other zero points, which TensorRT cannot take: the caller then
calibrates the graph afresh instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A fake-quant range whose uint8 zero point is 128 is int8 with zero point 0: the ranges tfmot's symmetric
#: quantizers learn ([-128/127 M, M] once settled, [-m, m] near their start) all nudge to it.
UINT8_ZERO_POINT_OF_INT8_ZERO = 128


@dataclass(frozen=True)
class FakeQuantQDQ:
    activations: int  # QuantizeLinear nodes, now int8 with zero point 0
    weights: int  # convolutions given int8 per-channel weights
    max_weight_error: float  # largest |w - int8 * scale| / max |w|: ~1e-7 when the weights came from fake-quant

    def note(self) -> str:
        return (f"Q/DQ from the QAT model's fake-quant nodes (no calibration): {self.activations} symmetric "
                f"activation ranges as trained, int8 per-channel weights for {self.weights} convolutions "
                f"(off their QAT grid by at most {self.max_weight_error:.0e} of a channel's peak)")


def _zero_point_names(graph) -> set[str]:
    return {node.input[2] for node in graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")
            and len(node.input) == 3}


def int8_qdq_from_fake_quant(proto) -> FakeQuantQDQ | None:
    """Rewrite a QAT model's tf2onnx graph in place as above; None (graph untouched) if any activation
    range has another zero point (tfmot's asymmetric ranges)."""
    from onnx import helper, numpy_helper

    graph = proto.graph
    initializers = {init.name: init for init in graph.initializer}
    zero_points = _zero_point_names(graph)
    if not zero_points or any(name not in initializers for name in zero_points):
        return None
    values = {name: numpy_helper.to_array(initializers[name]) for name in zero_points}
    if any(v.dtype != np.uint8 or v.size != 1 or int(v.ravel()[0]) != UINT8_ZERO_POINT_OF_INT8_ZERO
           for v in values.values()):
        return None
    for name in zero_points:
        initializers[name].CopyFrom(numpy_helper.from_array(np.zeros(values[name].shape, np.int8), name))
    activations = sum(1 for node in graph.node if node.op_type == "QuantizeLinear")

    nodes = list(graph.node)
    weights, worst = 0, 0.0
    done: set[str] = set()  # a weight two convolutions share gets one DequantizeLinear
    for conv in [n for n in nodes if n.op_type == "Conv" and len(n.input) > 1 and n.input[1] in initializers]:
        name = conv.input[1]
        if name in done:
            conv.input[1] = f"{name}_dequantized"
            continue
        done.add(name)
        w = numpy_helper.to_array(initializers[name]).astype(np.float32)
        peak = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)  # an all-zero (pruned) channel: any scale
        codes = np.clip(np.round(w / scale.reshape(-1, *[1] * (w.ndim - 1))), -127, 127)
        error = np.abs(codes * scale.reshape(-1, *[1] * (w.ndim - 1)) - w).max() / max(float(peak.max()), 1e-12)
        worst = max(worst, float(error))
        graph.initializer.extend([
            numpy_helper.from_array(codes.astype(np.int8), f"{name}_int8"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros(w.shape[0], np.int8), f"{name}_zero_point"),
        ])
        dequantize = helper.make_node("DequantizeLinear", [f"{name}_int8", f"{name}_scale", f"{name}_zero_point"],
                                      [f"{name}_dequantized"], name=f"{name}_DequantizeLinear", axis=0)
        nodes.insert(nodes.index(conv), dequantize)
        conv.input[1] = f"{name}_dequantized"
        weights += 1
    del graph.node[:]
    graph.node.extend(nodes)
    int8_tensors = {node.output[0] for node in nodes if node.op_type == "QuantizeLinear"}
    kept = [v for v in graph.value_info if v.name not in int8_tensors]  # recorded as uint8
    del graph.value_info[:]
    graph.value_info.extend(kept)
    used = {name for node in nodes for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:  # the float weights
        graph.initializer.remove(init)
    return FakeQuantQDQ(activations, weights, worst)
