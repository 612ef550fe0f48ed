"""TFLite: fp32, fp16 and full-integer int8 flatbuffers, builtin ops only, metadata embedded.

The int8 model is checked after conversion, not trusted: the converter can leave an
op in float between QUANTIZE/DEQUANTIZE pairs even when asked for int8 builtins
only, and it quantizes some ops wrongly (ONE_HOT's int8 output gets the scale of its
consumer while on/off keep theirs). Either fails here, naming the op and the layer.

A QAT model (tfmot fake-quant nodes) carries its own ranges, so its int8 model needs
no calibration set. Otherwise each activation's int8 range covers its 99.99th-percentile
range on the calibration frames (`--tflite-calib`, convert/tflite_ranges.py), not its min to max.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from segnet_edge.convert.context import Check, ConversionError, ExportContext, ExportResult
from segnet_edge.convert.registry import Availability, ExportFormat
from segnet_edge.convert.tflite_ranges import RangeChange
from segnet_edge.device.metadata import TensorQuantization

_INTEGER = ("int8", "uint8", "int16", "int32", "int64", "bool")


def available() -> Availability:
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:
        return Availability(False, "needs TensorFlow (pip install 'segnet-edge[train]')")
    return Availability(True)


def is_qat_model(model) -> bool:
    """tfmot's quantize_apply wraps layers in QuantizeWrapper(V2) and adds a QuantizeLayer."""
    from segnet_edge.model_io import QAT_LAYER_CLASSES

    return any(type(layer).__name__ in QAT_LAYER_CLASSES for layer in model.layers)


# --- conversion ------------------------------------------------------------------------------


def _converter(model, precision: str, representative: Callable[[], Iterator[list[np.ndarray]]] | None,
               io_dtype: str, qat: bool):
    from segnet_edge._tf import tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if precision == "fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if not qat:
            if representative is None:
                raise ConversionError("tflite-int8 needs a calibration set (or a QAT model)")
            converter.representative_dataset = representative
            # Builtins beside the int8 ones so a float leftover converts and is named by
            # check_full_integer, instead of a converter error that names no layer. (Not for QAT:
            # with an int8 op set the converter stops recognising the fake-quant graph.)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                   tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = getattr(tf, io_dtype)
        converter.inference_output_type = getattr(tf, io_dtype)
    elif precision != "fp32":
        raise ValueError(f"unknown precision {precision!r}")
    return converter


def _run(converter, model) -> bytes:
    try:
        return bytes(converter.convert())
    except Exception as exc:  # noqa: BLE001 - the converter raises ConverterError and plain exceptions
        raise ConversionError(explain_converter_error(str(exc), _layers_by_op(model))) from None


def convert_keras(model, precision: str, representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
                  io_dtype: str = "int8", qat: bool = False) -> bytes:
    """Keras model -> TFLite flatbuffer (input allocated at batch 1); never with Select-TF (Flex) ops.

    from_keras_model, not a traced concrete function: the converter finds a QAT model's
    fake-quant nodes only in the graph it freezes itself. int8 ranges are the calibration's min/max.
    """
    return _run(_converter(model, precision, representative, io_dtype, qat), model)


#: The report's note on int8 activation ranges taken as the calibration's min/max (`--tflite-calib minmax`).
MINMAX_NOTE = "activation ranges: the calibration's min/max"


def convert_keras_int8_percentile(model, representative: Callable[[], Iterator[list[np.ndarray]]],
                                  percentile: float, io_dtype: str = "int8") -> tuple[bytes, RangeChange]:
    """The int8 flatbuffer with each activation range narrowed to its percentile range (convert/tflite_ranges.py)."""
    from segnet_edge.convert.tflite_ranges import quantize_calibrated

    narrowed, change = _percentile_narrowed(_calibrate_only(model, representative, io_dtype), representative,
                                            percentile)
    try:
        return quantize_calibrated(narrowed, io_dtype), change
    except Exception as exc:  # noqa: BLE001 - as _run
        raise ConversionError(f"{explain_converter_error(str(exc), _layers_by_op(model))} "
                              "(`--tflite-calib minmax` quantizes with the converter's own ranges)") from None


def _calibrate_only(model, representative: Callable[[], Iterator[list[np.ndarray]]], io_dtype: str) -> bytes:
    """The float flatbuffer with the calibration's min/max ranges stored and nothing quantized yet."""
    converter = _converter(model, "int8", representative, io_dtype, qat=False)
    converter._experimental_calibrate_only = True  # noqa: SLF001 - see tflite_ranges
    return _run(converter, model)


def _percentile_narrowed(calibrated: bytes, representative: Callable[[], Iterator[list[np.ndarray]]],
                         percentile: float) -> tuple[bytes, RangeChange]:
    from segnet_edge.convert.tflite_ranges import percentile_ranges

    narrowed, change = percentile_ranges(calibrated, representative, percentile)
    if not change.tensors:
        raise ConversionError("the TFLite converter returned no calibrated ranges (has TensorFlow's calibrate-only "
                              "hook changed?); convert with `--tflite-calib minmax`")
    return narrowed, change


def convert_keras_int8(model, representative: Callable[[], Iterator[list[np.ndarray]]], io_dtype: str,
                       ranges: str, percentile: float) -> tuple[bytes, str]:
    """The calibrated int8 flatbuffer with `ranges` ("percentile" or "minmax") activation ranges, and the report's
    note on them: the one choice `convert` and the bench's variants both make."""
    if ranges == "percentile":
        flatbuffer, change = convert_keras_int8_percentile(model, representative, percentile, io_dtype)
        return flatbuffer, change.note(percentile)
    return convert_keras(model, "int8", representative, io_dtype), MINMAX_NOTE


def calibrate_int8(model, representative: Callable[[], Iterator[list[np.ndarray]]], io_dtype: str, ranges: str,
                   percentile: float) -> tuple[bytes, str]:
    """The calibrated float flatbuffer (ranges stored, nothing quantized) and the note on its ranges: what
    convert/precision_search.py quantizes many times over with different layers kept float
    (tflite_ranges.quantize_calibrated is the rest of `convert_keras_int8`)."""
    calibrated = _calibrate_only(model, representative, io_dtype)
    if ranges != "percentile":
        return calibrated, MINMAX_NOTE
    narrowed, change = _percentile_narrowed(calibrated, representative, percentile)
    return narrowed, change.note(percentile)


def _layers_by_op(model) -> dict[str, list[str]]:
    """TF op type -> the Keras layers whose graph holds it (node names are `model/layer/op`)."""
    from segnet_edge._tf import tf

    signature = tf.TensorSpec((1, *model.input_shape[1:]), tf.float32)
    graph_def = tf.function(lambda x: model(x, training=False)).get_concrete_function(signature).graph.as_graph_def()
    nodes = [*graph_def.node, *(n for f in graph_def.library.function for n in f.node_def)]
    found: dict[str, list[str]] = {}
    for node in nodes:
        layer = _layer_of(node.name)
        if layer not in found.setdefault(node.op, []):
            found[node.op].append(layer)
    return found


def explain_converter_error(message: str, layers_by_op: dict[str, list[str]] | None = None) -> str:
    """One line out of the converter's MLIR dump: which TF ops need Flex, and in which layers."""
    ops = list(dict.fromkeys(re.findall(r"'tf\.(\w+)' op", message)))
    if not ops:
        select = re.search(r"TF Select ops: ([\w, ]+)", message)
        ops = [o.strip() for o in select.group(1).split(",")] if select else []
    if not ops:
        first = next((line.strip() for line in message.splitlines() if "error" in line.lower()), message[:200])
        return f"TFLite conversion failed: {first[:300]}"
    described = []
    for op in ops:
        layers = (layers_by_op or {}).get(op) or ["?"]
        described.append(f"tf.{op} (layer {', '.join(repr(layer) for layer in layers)})")
    return (f"TFLite has no builtin for {', '.join(described)}: it would need Flex/Select-TF ops, which the board's "
            "runtime lacks; rewrite the layer with builtin ops (see segnet_edge/layers.py)")


# --- inspection ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpInfo:
    index: int
    name: str
    layer: str
    tensors: tuple[tuple[str, str], ...]  # (tensor name, dtype) of inputs and outputs


@dataclass
class TfliteGraph:
    """What the checks and the report need from a flatbuffer, read with one interpreter."""

    ops: list[OpInfo]
    input_quantization: TensorQuantization
    output_quantization: TensorQuantization
    per_channel_convs: int
    convs: int
    one_hot_problems: list[str]

    @property
    def op_set(self) -> list[str]:
        return sorted({op.name for op in self.ops})


def _layer_of(tensor_name: str) -> str:
    """`segnet/block5_unpool/SelectV2;...` -> `block5_unpool` (first fused name, minus the model's)."""
    first = tensor_name.split(";")[0]
    parts = [p for p in first.split("/") if p]
    if len(parts) >= 3:
        return parts[1]
    return parts[0] if parts else "?"


def _vote_layer(tensor_names: list[str]) -> str:
    """The layer most named by an op's outputs and constants: fused names list every folded layer
    (`conv_relu/Relu;conv_bn/...;conv/BiasAdd;conv/Conv2D`), and the op's own layer recurs most."""
    votes: dict[str, int] = {}
    for name in tensor_names:
        for piece in name.split(";"):
            parts = [p for p in piece.split("/") if p]
            if len(parts) >= 3:
                votes[parts[1]] = votes.get(parts[1], 0) + 1
    if votes:
        return max(votes, key=votes.get)
    return _layer_of(tensor_names[0]) if tensor_names else "?"


def _quantization(detail: dict) -> TensorQuantization:
    dtype = np.dtype(detail["dtype"]).name
    if dtype not in ("int8", "uint8"):
        return TensorQuantization(dtype)
    scale, zero_point = detail["quantization"]
    return TensorQuantization(dtype, float(scale), int(zero_point))


def inspect(flatbuffer: bytes) -> TfliteGraph:
    """Ops as written (no XNNPACK delegate folding them away), I/O quantization, weight scales."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=flatbuffer,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops, problems = [], []
    per_channel = convs = 0
    for op in interpreter._get_ops_details():
        indices = [i for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        tensors = tuple((str(details[i]["name"]), np.dtype(details[i]["dtype"]).name) for i in indices)
        outputs = [i for i in op["outputs"] if i >= 0]
        layer = _vote_layer([str(details[i]["name"]) for i in [*outputs, *op["inputs"][1:]] if i >= 0])
        ops.append(OpInfo(int(op["index"]), str(op["op_name"]), layer, tensors))
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            convs += 1
            per_channel += details[op["inputs"][1]]["quantization_parameters"]["scales"].size > 1
        elif op["op_name"] == "ONE_HOT" and outputs:
            problems += _one_hot_problems(interpreter, details, op, layer)
    return TfliteGraph(ops, _quantization(interpreter.get_input_details()[0]),
                       _quantization(interpreter.get_output_details()[0]), per_channel, convs, problems)


def _one_hot_problems(interpreter, details: dict, op: dict, layer: str) -> list[str]:
    """ONE_HOT copies its raw on/off values: they only mean 1/0 if they share the output's scale."""
    out = details[op["outputs"][0]]
    if np.dtype(out["dtype"]).name not in ("int8", "uint8"):
        return []
    out_scale, out_zero = out["quantization"]
    problems = []
    for role, index in (("on", op["inputs"][2]), ("off", op["inputs"][3])):
        value = details[index]
        raw = int(np.asarray(interpreter.get_tensor(index)).reshape(-1)[0])
        meant = (raw - value["quantization"][1]) * value["quantization"][0]
        read = (raw - out_zero) * out_scale
        if abs(meant - read) > max(abs(meant), 1.0) * 0.01:
            problems.append(f"int8 ONE_HOT in layer {layer!r} is mis-quantized by the converter ({role} value "
                            f"{meant:.3g} reads as {read:.3g}); export with the 'select' unpool mode")
    return problems


def check_builtin_only(graph: TfliteGraph) -> None:
    """Flex (Select-TF) and custom ops need runtimes the board does not have."""
    for op in graph.ops:
        if op.name.startswith("Flex") or op.name in ("CUSTOM", "DELEGATE"):
            raise ConversionError(f"op {op.name} in layer {op.layer!r} is not a TFLite builtin; the board's "
                                  "runtime cannot run it")


def check_full_integer(graph: TfliteGraph) -> None:
    """Every tensor of every op must be an integer type, and every ONE_HOT correctly scaled."""
    check_builtin_only(graph)
    floating = [(op, name, dtype) for op in graph.ops for name, dtype in op.tensors if dtype not in _INTEGER]
    if floating:
        op, name, dtype = floating[0]
        others = len({o.index for o, _, _ in floating}) - 1
        more = f" (and {others} more op(s))" if others else ""
        raise ConversionError(f"int8 model is not full-integer: {op.name} in layer {op.layer!r} keeps a {dtype} "
                              f"tensor {name.split(';')[0]!r}{more}; that layer needs an int8-quantizable form")
    if graph.one_hot_problems:
        raise ConversionError(graph.one_hot_problems[0])


# --- exporter ----------------------------------------------------------------------------------


def export(ctx: ExportContext, fmt: ExportFormat) -> ExportResult:
    from segnet_edge.atomic import write_bytes_atomic
    from segnet_edge.convert.source import LEARNT
    from segnet_edge.device.artifact_metadata import embed_tflite_metadata

    model, mode = ctx.source.model_for(fmt)
    learnt = fmt.is_int8 and ctx.source.int8_ranges(fmt) == LEARNT
    notes, mixed = [], None
    if fmt.is_int8 and not learnt:
        from segnet_edge.calibration.tflite import representative_dataset

        calib = ctx.need_calibration(fmt.name)
        representative = representative_dataset(calib, ctx.metadata.normalization)
        if mixed_precision_asked(ctx.options):
            flatbuffer, note, mixed = _mixed_int8(ctx, model, representative)
        else:
            flatbuffer, note = convert_keras_int8(model, representative, ctx.options.io_dtype,
                                                  ctx.options.tflite_calib, ctx.options.tflite_calib_percentile)
        notes += [f"calibrated on {len(calib)} frames", note]
    else:  # float (a QAT model's float twin), or a QAT model's int8 from its own ranges
        if learnt:
            notes.append("ranges from the QAT model's fake-quant nodes (no calibration)")
        flatbuffer = convert_keras(model, fmt.precision, io_dtype=ctx.options.io_dtype, qat=learnt)
    graph = inspect(flatbuffer)
    check_builtin_only(graph)
    checks = [Check("builtin ops only", True, f"{len(graph.ops)} ops")]
    metadata = ctx.artifact_metadata(fmt, mode)
    if fmt.is_int8 and mixed is not None:
        checks += _float_island_checks(graph, mixed)
    elif fmt.is_int8:
        check_full_integer(graph)
        checks.append(Check("full integer", True, f"every tensor integer; {graph.input_quantization.dtype} input "
                                                  f"and {graph.output_quantization.dtype} output"))
        checks.append(Check("per-channel weights", graph.per_channel_convs == graph.convs,
                            f"{graph.per_channel_convs}/{graph.convs} convolutions"))
    if fmt.is_int8:
        metadata = replace(metadata, input_quantization=graph.input_quantization,
                           output_quantization=graph.output_quantization if metadata.output != "labels"
                           else replace(metadata.output_quantization))  # a label map is not a quantized value
    path = ctx.staging / fmt.artifact
    write_bytes_atomic(path, embed_tflite_metadata(flatbuffer, metadata))
    if mixed is not None:
        checks += mixed.checks()
    return ExportResult(path=path, metadata=metadata, ops=graph.op_set, unpool_mode=mode, checks=checks,
                        notes=notes, mixed_precision=mixed)


# --- mixed precision (convert/precision_search.py) -----------------------------------------------


def mixed_precision_asked(options) -> bool:
    from segnet_edge.convert.precision_search import asked

    return asked(options)


def _mixed_int8(ctx: ExportContext, model, representative):
    """(flatbuffer with float islands, the ranges note, precision_search.MixedPrecision)."""
    from segnet_edge.convert.precision_search import mixed_int8

    calibrated, note = calibrate_int8(model, representative, ctx.options.io_dtype, ctx.options.tflite_calib,
                                      ctx.options.tflite_calib_percentile)
    flatbuffer, mixed = mixed_int8(ctx, calibrated)
    return flatbuffer, note, mixed


def _float_island_checks(graph: TfliteGraph, mixed) -> list[Check]:
    """Float only where asked: every op with a float tensor is a kept layer's or a QUANTIZE/DEQUANTIZE at its edge."""
    from segnet_edge.convert.keep_float import layers_named, unit_of

    if graph.one_hot_problems:
        raise ConversionError(graph.one_hot_problems[0])

    kept = set(mixed.kept)
    floating = [op for op in graph.ops if op.name not in ("QUANTIZE", "DEQUANTIZE")
                and any(dtype not in _INTEGER for _, dtype in op.tensors)]
    stray = sorted({op.layer for op in floating if not any(unit_of(layer, kept) in kept for name, _ in op.tensors
                                                           for layer in layers_named(name))})
    int8_convs = graph.convs - sum(op.name in ("CONV_2D", "DEPTHWISE_CONV_2D") for op in floating)
    return [Check("float only in kept layers", not stray,
                  f"{len(floating)} float ops, all in the layers kept float; {graph.input_quantization.dtype} input "
                  f"and {graph.output_quantization.dtype} output" if not stray
                  else f"float ops outside the kept layers: {', '.join(stray)}"),
            Check("per-channel weights", graph.per_channel_convs == int8_convs,
                  f"{graph.per_channel_convs}/{int8_convs} int8 convolutions")]
