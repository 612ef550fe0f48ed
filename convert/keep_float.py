"""`--keep-float LAYER[,LAYER...]`: which Keras layers a user may keep in float, and the graph nodes they are.

Names are checked against the model file before anything is built (bad input costs
nothing). In the int8 TFLite model a Keras layer is the ops whose output tensor names
it (`segnet/block1_conv1_relu/Relu;segnet/block1_conv1/Conv2D` is conv, batch norm and
ReLU folded into one op, and belongs to `block1_conv1`); the MLIR quantizer leaves
those ops in float (`denylisted_nodes`, TensorFlow's QuantizationDebugger's hook) with
QUANTIZE/DEQUANTIZE around them. In the QDQ ONNX graphs a layer is the nodes tf2onnx
named after it, which ONNX Runtime's quantizer leaves without Q/DQ (`nodes_to_exclude`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from segnet_edge.device.errors import UsageError

if TYPE_CHECKING:
    from segnet_edge.model_io import StoredModel

#: `--keep-float all`: every layer of the graph (the float graph inside int8 input and output).
ALL = "all"
#: Keras layers folded into the convolution before them: naming one names that convolution.
FOLDED_SUFFIXES = ("_relu", "_bn")


def parse_layer_list(text: str | None) -> tuple[str, ...]:
    """`"a,b c"` -> ("a", "b", "c"): commas or spaces, duplicates dropped, order kept."""
    if not text:
        return ()
    return tuple(dict.fromkeys(name for name in text.replace(",", " ").split() if name))


def check_layer_names(names: tuple[str, ...], stored: StoredModel) -> None:
    """One line naming the unknown layers and where to find the real ones (the file's config, read once)."""
    if not names:
        return
    layers = stored.layer_names
    unknown = [name for name in names if name not in {*layers, ALL}]
    if unknown:
        convs = [n for n in layers if "conv" in n and not n.endswith(FOLDED_SUFFIXES)]
        raise UsageError(f"--keep-float: no layer {', '.join(repr(n) for n in unknown)} in {stored.path.name}; "
                         f"name its layers, e.g. {', '.join(convs[:3])} (see report.md's per-layer table, "
                         "`convert --layer-error`)")


def unit_of(layer: str, known: set[str]) -> str:
    """`block1_conv1_relu` -> `block1_conv1`: the layer a folded one belongs to, when that layer exists."""
    for suffix in FOLDED_SUFFIXES:
        if layer.endswith(suffix) and layer[: -len(suffix)] in known:
            return layer[: -len(suffix)]
    return layer


def layers_named(tensor_name: str) -> list[str]:
    """`m/a_relu/Relu;m/a/Conv2D` -> ["a_relu", "a"]: each fused piece's layer."""
    layers = []
    for piece in tensor_name.split(";"):
        parts = [p for p in piece.split("/") if p]
        if len(parts) >= 3 and parts[1] not in layers:
            layers.append(parts[1])
    return layers


def tflite_units(calibrated: bytes, output_layer: str = "probabilities") -> dict[str, list[str]]:
    """{layer: output tensor names of its ops} over the calibrated float TFLite model, in graph order.

    Ops named after no layer (the model's output SOFTMAX, named after the signature) are `output_layer`'s.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=calibrated,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    names = {t["index"]: str(t["name"]) for t in interpreter.get_tensor_details()}
    per_op = [[names[i] for i in op["outputs"] if i >= 0] for op in interpreter._get_ops_details()]
    known = {layer for outputs in per_op for name in outputs for layer in layers_named(name)}
    units: dict[str, list[str]] = {}
    for outputs in per_op:
        layers = [layer for name in outputs for layer in layers_named(name)]
        unit = unit_of(layers[0], known) if layers else output_layer
        units.setdefault(unit, []).extend(outputs)
    return units


def tflite_nodes(units: dict[str, list[str]], names: tuple[str, ...]) -> list[str]:
    """The output tensor names (the quantizer's node names) of the layers `names`; a name that owns no op
    (folded into another, or not in the graph) is a one-line error."""
    from segnet_edge.convert.context import ConversionError

    if ALL in names:
        return [node for nodes in units.values() for node in nodes]
    known = set(units)
    nodes, missing = [], []
    for name in names:
        unit = unit_of(name, known)
        if unit not in units:
            missing.append(name)
            continue
        nodes += [node for node in units[unit] if node not in nodes]
    if missing:
        raise ConversionError(f"--keep-float: {', '.join(repr(n) for n in missing)} own(s) no op of the int8 TFLite "
                              f"graph (an input, a reshape, or folded away); keep e.g. {', '.join(list(units)[:3])}")
    return nodes


def onnx_nodes(proto, names: tuple[str, ...]) -> list[str]:
    """The ONNX nodes tf2onnx named after the layers `names` (`segnet/block1_conv1/Conv2D`, ...): the QDQ quantizer
    leaves them without Q/DQ, so TensorRT runs them in fp16/fp32 and ONNX Runtime in float."""
    from segnet_edge.convert.context import ConversionError

    if ALL in names:
        return [node.name for node in proto.graph.node]
    nodes, missing = [], []
    for name in names:
        wanted = {name, *(f"{name}{suffix}" for suffix in FOLDED_SUFFIXES)}
        found = [node.name for node in proto.graph.node if wanted & set(layers_named(node.name))]
        missing += [] if found else [name]
        nodes += [node for node in found if node not in nodes]
    if missing:
        raise ConversionError(f"--keep-float: {', '.join(repr(n) for n in missing)} name(s) no node of the ONNX graph "
                              "(an input, or folded away); name a convolution, pooling or unpooling layer")
    return nodes
