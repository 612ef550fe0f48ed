"""Which ONNX graphs TensorRT's ONNX parser takes, per TensorRT version, checked before the board finds out.

The operator tables come from onnx-tensorrt's `docs/operators.md` on its release
branches (release/8.2-GA ... 8.4-GA, 8.5-GA, 8.6-GA, 10.x): the operators marked
supported. Later versions are earlier tables plus what they added. Where a release
added an operator we are unsure of, it is left out, so the check errs towards a
false alarm, never towards a graph that fails on the board.

Beyond operators: the opset the parser knows (13 up to 8.4, 17 for 8.5/8.6, 20 for
10.x), static shapes (we build fixed-size engines), no `MaxUnpool` and no `MaxPool`
with its indices output (unsupported everywhere: SegNet's pooling is written without
them), and the explicit-quantization rules: Q/DQ zero points must be 0 and a
DequantizeLinear must read int8 (ONNX Runtime's int32 bias DQ is rejected).
"""

from __future__ import annotations

from dataclasses import dataclass

from segnet_edge.convert.registry import parse_trt_version

#: onnx-tensorrt release/8.2-GA docs/operators.md ("TensorRT 8.2 supports operators up to Opset 13"),
#: unchanged in substance through release/8.4-GA.
TRT_8_2_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast Ceil Celu Clip
Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear Div Dropout
Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gemm GlobalAveragePool
GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GRU HardSigmoid Identity If ImageScaler InstanceNormalization
IsNaN LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
Min Mul Neg NonMaxSuppression Not Or Pad ParametricSoftplus Pow PRelu QuantizeLinear RandomUniform
RandomUniformLike Range ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN Round ScaledTanh Scan Scatter ScatterElements
ScatterND Selu Shape Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze
Sub Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Unsqueeze Upsample Where Xor
""".split())

#: release/8.5-GA ("up to Opset 17"): OneHot arrives here, with these others.
TRT_8_5_OPS = TRT_8_2_OPS | frozenset("""
GridSample HardSwish MeanVarianceNormalization Mod NonZero OneHot RandomNormal RandomNormalLike Reciprocal
RoiAlign Shrink Trilu
""".split())

#: release/8.6-GA ("up to Opset 17").
TRT_8_6_OPS = TRT_8_5_OPS | frozenset({"LayerNormalization"})

#: release/10.x ("opset 9 to opset 20").
TRT_10_OPS = TRT_8_6_OPS | frozenset({"GroupNormalization", "BlackmanWindow", "HammingWindow", "HannWindow"})


@dataclass(frozen=True)
class TrtSupport:
    version: tuple[int, int]  # the table's TensorRT version
    max_opset: int
    ops: frozenset[str]
    source: str

    @property
    def label(self) -> str:
        return f"{self.version[0]}.{self.version[1]}"


_TABLES = (
    TrtSupport((8, 2), 13, TRT_8_2_OPS, "onnx-tensorrt release/8.2-GA docs/operators.md"),
    TrtSupport((8, 5), 17, TRT_8_5_OPS, "onnx-tensorrt release/8.5-GA docs/operators.md"),
    TrtSupport((8, 6), 17, TRT_8_6_OPS, "onnx-tensorrt release/8.6-GA docs/operators.md"),
    TrtSupport((10, 0), 20, TRT_10_OPS, "onnx-tensorrt release/10.0-GA docs/operators.md"),
)


def support_for(trt_version: str) -> TrtSupport:
    """The newest table not newer than `trt_version` (8.0/8.1 use 8.2's: same opset limit)."""
    wanted = parse_trt_version(trt_version)
    chosen = _TABLES[0]
    for table in _TABLES:
        if table.version <= wanted:
            chosen = table
    return chosen


def tensor_dims(value_info) -> list[int | str | None] | None:
    """Static dims as ints, dynamic ones as their name or None; None when the shape is unknown."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None)
            for d in tensor_type.shape.dim]


def check_onnx_for_tensorrt(model, trt_version: str) -> list[str]:
    """Problems TensorRT `trt_version`'s ONNX parser would have with `model` (an onnx.ModelProto); [] if none."""
    import onnx
    from onnx import numpy_helper

    support = support_for(trt_version)
    problems: list[str] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and opset > support.max_opset:
        problems.append(f"opset {opset} is newer than TensorRT {support.label} parses (up to {support.max_opset})")
    unsupported: dict[str, list[str]] = {}
    quantization: dict[str, list[str]] = {}  # problem -> node names, so 80 Q/DQ nodes make one line
    initializers = {i.name: i for i in model.graph.initializer}
    outputs = {o.name for o in model.graph.output}
    for node in model.graph.node:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        if op == "MaxUnpool" or (op == "MaxPool" and len([o for o in node.output if o]) > 1):
            problems.append(f"{node.name or op}: {op} with indices never parses in TensorRT; use segnet_edge.layers")
        if op == "Cast" and node.output[0] not in outputs and _cast_to(node) in (onnx.TensorProto.UINT8,
                                                                                 onnx.TensorProto.INT8):
            problems.append(f"{node.name or op}: a Cast to uint8/int8 inside the graph; TensorRT takes uint8 only "
                            "as a network input or output and int8 only through Q/DQ (keep pooling indices int32)")
        elif op not in support.ops:
            unsupported.setdefault(op, []).append(node.name)
        if op in ("QuantizeLinear", "DequantizeLinear"):
            for problem in _qdq_problems(node, op, initializers, numpy_helper):
                quantization.setdefault(problem, []).append(node.name or op)
    for op, names in sorted(unsupported.items()):
        problems.append(f"{op} (e.g. {names[0] or 'unnamed'}, {len(names)} node(s)) is not supported by TensorRT "
                        f"{support.label}'s ONNX parser")
    for problem, names in quantization.items():
        problems.append(f"{names[0]}{f' and {len(names) - 1} more' if len(names) > 1 else ''}: {problem}")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a graph shape inference cannot read is the parser's problem too
        inferred = model
        problems.append("ONNX shape inference fails on this graph")
    graph = inferred.graph
    for kind, values in (("input", graph.input), ("output", graph.output), ("tensor", graph.value_info)):
        for value in values:
            if value.name in initializers:
                continue
            dims = tensor_dims(value)
            if dims is None and kind == "tensor":
                continue  # shape inference did not reach it; the parser computes it from the static inputs
            if dims is None or any(not isinstance(d, int) for d in dims):
                problems.append(f"{kind} {value.name!r} has a dynamic shape {dims}; export with a fixed size")
                break
    return problems


def _cast_to(node) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _qdq_problems(node, op: str, initializers: dict, numpy_helper) -> list[str]:
    problems = []
    if len(node.input) > 2 and node.input[2] in initializers:
        zero_point = numpy_helper.to_array(initializers[node.input[2]])
        if zero_point.any():
            problems.append("non-zero zero point; TensorRT takes symmetric quantization only")
    if op == "DequantizeLinear" and node.input[0] in initializers:
        dtype = numpy_helper.to_array(initializers[node.input[0]]).dtype
        if dtype.name != "int8":
            problems.append(f"dequantizes {dtype.name}; TensorRT's DequantizeLinear reads int8 (keep biases in float)")
    return problems
