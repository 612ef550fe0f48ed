"""A symmetric QAT model's learnt ranges as the activation parameters of ONNX Runtime's uint8 graph.

model_ort_int8.onnx is built from the float twin (MaxPool indices + MaxUnpool, convert/ort_pooling.py),
not from the QAT model's own graph, so calibrating it afresh would throw away the ranges the model was
trained with (agreement with the QAT model on the demo: 93%, against 96.9% for the graphs made from them).
Instead every tensor a fake-quant sat on gets its range back as an ONNX Runtime override:

- a ReLU output: uint8, zero point 0, the QAT step ((max - min) / 255): the QAT model's int8 codes 0..127,
  so ONNX Runtime still folds the Relu into its fused convolution. The QAT model clips at code 127 and
  uint8 at 255, so a uint8 Clip(0, 127) follows each of these quantizers (`clamp_as_trained`): without
  it 2-4% of a level's values exceed the learnt range and the demo's agreement with the QAT model
  drops from 96.9% to 95.0% (calibrated afresh: 93%);
- any other quantized tensor (the input, the classifier's logits, an LRN output): uint8, zero point 128,
  which is the QAT model's int8 grid and clamp exactly (plus one level at the top);
- tensors no fake-quant sat on take the range of what they copy values from (pooling, unpooling,
  transposes), and the softmax its fixed [0, 1].

Matched by Keras layer name, which tf2onnx keeps in node and tensor names; a quantized tensor left
without a QAT range is an error, not a silent calibration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from segnet_edge.convert.context import ConversionError

#: Ops whose output holds a subset of their input's values (plus exact zeros): the input's range.
SAME_RANGE_OPS = ("MaxPool", "MaxUnpool", "Transpose", "Reshape", "Slice", "Pad", "DepthToSpace", "SpaceToDepth")

#: The int8 grid of a symmetric QAT range is uint8 with this zero point (see convert/qat_qdq.py).
SIGNED_ZERO_POINT = 128


def fake_quant_ranges(qat_model) -> dict[str, tuple[float, float]]:
    """Keras layer name (inside tfmot's wrapper) -> the (min, max) its output fake-quant learnt."""
    ranges = {}
    for layer in qat_model.layers:
        stored = {w.name.split("/")[-1].split(":")[0]: float(np.asarray(w.numpy()).ravel()[0])
                  for w in layer.weights if w.name.endswith(("min:0", "max:0")) and "kernel" not in w.name}
        low = next((v for k, v in stored.items() if k.endswith(("output_min", "post_activation_min", "layer_min"))), None)
        high = next((v for k, v in stored.items() if k.endswith(("output_max", "post_activation_max", "layer_max"))), None)
        if low is not None and high is not None:
            ranges[getattr(layer, "layer", layer).name] = (low, high)
    return ranges


def _parameters(scale: float, zero_point: int) -> list[dict]:
    return [{"scale": np.array(scale, np.float32), "zero_point": np.array(zero_point, np.uint8)}]


@dataclass
class LearntRanges:
    overrides: dict[str, list[dict]] = field(default_factory=dict)  # ONNX Runtime's TensorQuantOverrides
    clamped: set[str] = field(default_factory=set)  # ReLU outputs: zero point 0, clipped at code 127
    learnt: set[str] = field(default_factory=set)  # tensors a fake-quant sat on (not those copying one)


def range_overrides(proto, ranges: dict[str, tuple[float, float]], input_name: str) -> LearntRanges:
    """The quantization parameters of the float graph `proto`: every tensor a layer with a learnt range
    writes, then what pooling, unpooling, transposes and the softmax pass on."""
    nodes = list(proto.graph.node)
    learnt = LearntRanges()
    overrides = learnt.overrides
    for name, (low, high) in ranges.items():
        step = (high - low) / 255.0
        if name == "quantize_layer":  # tfmot's input quantizer: the graph's input
            overrides[input_name] = _parameters(step, SIGNED_ZERO_POINT)
            learnt.learnt.add(input_name)
            continue
        # by node name, or by output name: tf2onnx folds a BN into its convolution's node, which then writes
        # a tensor named after the BN layer. The last such node writes the layer's output; the layout
        # Transposes tf2onnx puts in a layer's scope are skipped (one on its input would get its range).
        scoped = [n for n in nodes if n.op_type != "Transpose"
                  and (f"/{name}/" in f"/{n.name}/" or f"/{name}/" in f"/{n.output[0]}/")]
        if not scoped:
            raise ConversionError(f"the QAT model's layer {name!r} has no node in the ONNX graph; re-run "
                                  "`segnet-edge quantize` on the float model")
        node = scoped[-1]
        relu = node.op_type == "Relu"
        overrides[node.output[0]] = _parameters(step, 0 if relu else SIGNED_ZERO_POINT)
        learnt.learnt.add(node.output[0])
        if relu:
            learnt.clamped.add(node.output[0])
    for node in nodes:  # graph order: a copy's source is settled before the copy
        if node.output[0] in overrides:
            continue
        if node.op_type in SAME_RANGE_OPS and node.input[0] in overrides:
            overrides[node.output[0]] = overrides[node.input[0]]
        elif node.op_type == "Softmax":
            overrides[node.output[0]] = _parameters(1.0 / 255.0, 0)
    return learnt


def _rounded_downstream(name: str, nodes: list, read_quantized: set[str], overrides: dict) -> bool:
    """True when every path from `name` passes only value-moving ops (SAME_RANGE_OPS) before a QuantizeLinear
    on the same grid: rounding commutes with them, so a pair on `name` itself would round twice (SegNet's
    input, quantized after tf2onnx's NHWC -> NCHW transpose)."""
    readers = [n for n in nodes if name in n.input]
    if not readers:
        return False
    for reader in readers:
        output = reader.output[0] if reader.output else ""
        if (reader.op_type not in SAME_RANGE_OPS or reader.input[0] != name
                or overrides.get(output) != overrides.get(name)):
            return False
        if output not in read_quantized and not _rounded_downstream(output, nodes, read_quantized, overrides):
            return False
    return True


def quantize_where_trained(quantized, learnt: LearntRanges) -> int:
    """A QuantizeLinear/DequantizeLinear pair on every tensor a fake-quant sat on that ONNX Runtime left in
    float because no op it quantizes reads it (SegNet-Basic's input, read by the float LRN); returns how many.
    The QAT model rounded these tensors, so the graph must too."""
    from onnx import helper, numpy_helper

    graph = quantized.graph
    nodes = list(graph.node)
    read_quantized = {n.input[0] for n in nodes if n.op_type == "QuantizeLinear"}
    added = 0
    for name in sorted(learnt.learnt - read_quantized):
        readers = [n for n in nodes if name in n.input]
        if not readers or _rounded_downstream(name, nodes, read_quantized, learnt.overrides):
            continue
        parameters = learnt.overrides[name][0]
        scale, zero_point = f"{name}_qat_scale", f"{name}_qat_zero_point"
        codes, values = f"{name}_qat_codes", f"{name}_qat_rounded"
        graph.initializer.extend([numpy_helper.from_array(parameters["scale"], scale),
                                  numpy_helper.from_array(parameters["zero_point"], zero_point)])
        for reader in readers:
            reader.input[:] = [values if i == name else i for i in reader.input]
        first = min(nodes.index(n) for n in readers)
        nodes[first:first] = [helper.make_node("QuantizeLinear", [name, scale, zero_point], [codes],
                                               name=f"{name}_qat_quantize"),
                              helper.make_node("DequantizeLinear", [codes, scale, zero_point], [values],
                                               name=f"{name}_qat_dequantize")]
        added += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return added


def clamp_as_trained(quantized, learnt: LearntRanges) -> int:
    """A uint8 Clip(0, 127) after every QuantizeLinear of a ReLU output: the QAT model's clamp at int8
    code 127, on the codes themselves; returns how many."""
    from onnx import helper, numpy_helper

    graph = quantized.graph
    nodes = list(graph.node)
    low, high = "qat_clamp_low", "qat_clamp_high"
    clamped = 0
    for quantize in [n for n in nodes if n.op_type == "QuantizeLinear" and n.input[0] in learnt.clamped]:
        codes, kept = quantize.output[0], f"{quantize.output[0]}_clamped"
        for reader in nodes:
            reader.input[:] = [kept if name == codes else name for name in reader.input]
        nodes.insert(nodes.index(quantize) + 1, helper.make_node("Clip", [codes, low, high], [kept],
                                                                 name=f"{quantize.name}_clamp"))
        clamped += 1
    if clamped:
        graph.initializer.extend([numpy_helper.from_array(np.array(0, np.uint8), low),
                                  numpy_helper.from_array(np.array(127, np.uint8), high)])
    del graph.node[:]
    graph.node.extend(nodes)
    return clamped


def check_every_range_learnt(quantized, learnt: LearntRanges) -> int:
    """Every QuantizeLinear of the quantized graph carries one of `overrides`' parameters; returns how many.

    ONNX Runtime calibrates any activation without an override; here that would be a range the QAT model
    never trained with, so it is refused."""
    from onnx import numpy_helper

    constants = {init.name: numpy_helper.to_array(init) for init in quantized.graph.initializer}
    parameters = {(float(p[0]["scale"]), int(p[0]["zero_point"])) for p in learnt.overrides.values()}
    count = 0
    for node in quantized.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[1] not in constants:
            continue
        scale, zero_point = float(constants[node.input[1]]), int(constants[node.input[2]])
        if not any(zero_point == z and abs(scale - s) <= 1e-6 * s for s, z in parameters):
            raise ConversionError(f"{node.input[0]}: quantized with no range from the QAT model (scale {scale:g}); "
                                  "convert the float model with --calib instead")
        count += 1
    return count
