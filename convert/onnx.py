"""ONNX: a static-shape float graph via tf2onnx, and a QDQ int8 graph via ONNX Runtime static quantization.

The QDQ graph is made for TensorRT's explicit quantization as much as for ONNX
Runtime: symmetric int8 activations and weights (TensorRT takes zero points of 0
only), per-channel weight scales, and biases left in float (TensorRT's
DequantizeLinear reads int8, not ONNX Runtime's int32 biases). A QAT model trained with
symmetric ranges (`quantize`'s default) gives its fake-quant nodes as the Q/DQ pairs directly, without
calibration (convert/qat_qdq.py); one with tfmot's asymmetric ranges is calibrated afresh.

Every graph is checked against the TensorRT version the board runs (`--trt-version`)
with `trt_support.check_onnx_for_tensorrt`; a graph that would not parse is
reported as a failed check and no engine is built from it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
from pathlib import Path

from segnet_edge.convert.context import Check, ExportContext, ExportResult
from segnet_edge.convert.registry import Availability, ExportFormat
from segnet_edge.convert.trt_support import check_onnx_for_tensorrt, support_for, tensor_dims

INPUT_NAME = "image"


def available() -> Availability:
    import importlib.util

    missing = [m for m in ("tf2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return Availability(False, f"needs {', '.join(missing)} (pip install 'segnet-edge[convert]')")
    return Availability(True)


@contextlib.contextmanager
def _quiet():
    """tf2onnx and the quantizer log at INFO/WARNING on the root logger, and the histogram calibrator prints a
    line per chunk it reads; keep the CLI's output readable."""
    loggers = [logging.getLogger(), logging.getLogger("tf2onnx")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_graph(model, size: tuple[int, int], batch: int, opset: int):
    """Keras model -> onnx.ModelProto with a static (batch, H, W, 3) float input named "image"."""
    import tf2onnx

    from segnet_edge._tf import tf

    signature = (tf.TensorSpec((batch, *size, 3), tf.float32, name=INPUT_NAME),)
    with _quiet():
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    return proto


def op_set(proto) -> list[str]:
    return sorted({n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in proto.graph.node})


def float_tensor_bytes(path: Path) -> int:
    """Bytes of every float tensor one run of the graph at `path` produces (its static shapes, inferred)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    total = 0
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        dims = tensor_dims(value)
        if value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and dims and all(isinstance(d, int) for d in dims):
            total += 4 * math.prod(dims)
    return total


def quantize_qdq(float_path: Path, out_path: Path, reader, method: str, percentile: float,
                 for_tensorrt: bool = True, chunk_bytes: int | None = None,
                 overrides: dict[str, list[dict]] | None = None, exclude: list[str] | None = None) -> int:
    """ONNX Runtime static quantization to per-channel QDQ int8.

    for_tensorrt: symmetric int8 activations (TensorRT takes zero point 0 only), which keep 7 bits
    after a ReLU; otherwise ONNX Runtime's own choice, asymmetric uint8 activations with all 8 bits.
    A CalibrationReader (which knows its length and can start at any batch) is fed in chunks of at most `chunk_bytes`
    of tensors (default CALIBRATION_CHUNK_BYTES): the percentile calibrator holds a whole chunk's tensors,
    and 100 full-size frames at once outgrew a 23 GB machine. `overrides`: ONNX Runtime's
    TensorQuantOverrides (tensor -> scale and zero point), which win over the calibrated ranges. `exclude`: nodes
    left without Q/DQ (--keep-float, convert/keep_float.py).
    Returns how many chunks it read.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from segnet_edge.calibration.onnxruntime import CALIBRATION_CHUNK_BYTES, CalibrationReader, chunk_batches

    extra = {"ActivationSymmetric": for_tensorrt, "WeightSymmetric": True, "QuantizeBias": False}
    if method == "percentile":
        extra["CalibPercentile"] = percentile
    if overrides:
        extra["TensorQuantOverrides"] = overrides
    chunks = 1
    # Not isinstance: ONNX Runtime's reader ABC calls every class with a get_next a subclass, and its set_range
    # and __len__ raise NotImplementedError.
    if CalibrationReader in type(reader).__mro__:
        budget = CALIBRATION_CHUNK_BYTES if chunk_bytes is None else chunk_bytes
        stride = chunk_batches(len(reader), float_tensor_bytes(float_path), budget)
        if stride < len(reader):
            extra["CalibStridedMinMax"] = stride  # ONNX Runtime's name; it chunks every calibration method
            chunks = len(reader) // stride

    with _quiet():
        quantize_static(
            str(float_path), str(out_path), reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8 if for_tensorrt else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.Percentile if method == "percentile" else CalibrationMethod.MinMax,
            extra_options=extra,
            nodes_to_exclude=exclude or [],
        )
    return chunks


def _static_shape_check(proto, batch: int) -> Check:
    shapes = [tensor_dims(v) for v in (*proto.graph.input, *proto.graph.output)]
    static = all(dims is not None and all(isinstance(d, int) for d in dims) for dims in shapes)
    batch_ok = all(dims and dims[0] == batch for dims in shapes)
    return Check("static shape", static and batch_ok, f"input/output {shapes}")


def export(ctx: ExportContext, fmt: ExportFormat) -> ExportResult:
    import onnx

    options = ctx.options
    model, mode = ctx.source.model_for(fmt)
    notes = []
    if not fmt.is_int8:
        proto = onnx.load(str(ctx.float_onnx(mode)))
    else:
        from segnet_edge.convert.registry import unpool_mode
        from segnet_edge.convert.source import LEARNT

        proto = qat_qdq(ctx, model, notes) if ctx.source.int8_ranges(fmt) == LEARNT else None
        if proto is None:  # calibrated here: a float model, or a QAT model's weights (see source.float_twin)
            mode = unpool_mode(fmt, options.trt_version)
            if ctx.source.recalibration_note:
                notes.append(ctx.source.recalibration_note)
            proto, note = calibrated_qdq(ctx, fmt, mode)
            notes.append(note)
    support = support_for(options.trt_version)
    problems = check_onnx_for_tensorrt(proto, options.trt_version)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    parser = Check(f"TensorRT {support.label} parser", not problems,
                   "; ".join(problems) if problems else f"opset {opset}, every op supported ({support.source})")
    return write_artifact(ctx, fmt, proto, mode, notes, [parser])


def qat_qdq(ctx: ExportContext, model, notes: list[str]):
    """A symmetric QAT model's own graph as zero-point-0 int8 QDQ (convert/qat_qdq.py); None if tf2onnx did not
    give every range a symmetric zero point."""
    from segnet_edge.convert.qat_qdq import int8_qdq_from_fake_quant

    proto = export_graph(model, ctx.input_size, ctx.options.batch, ctx.options.onnx_opset)
    rewrite = int8_qdq_from_fake_quant(proto)
    if rewrite is None:
        return None
    notes.append(rewrite.note())
    return proto


def calibrated_qdq(ctx: ExportContext, fmt: ExportFormat, mode: str, for_tensorrt: bool = True):
    """(QDQ graph of the float `mode` graph, calibrated on the shared set; the report's note on how)."""
    import onnx

    from segnet_edge.calibration.onnxruntime import CalibrationReader

    options = ctx.options
    reader = CalibrationReader(ctx.need_calibration(fmt.name), ctx.metadata.normalization, INPUT_NAME, options.batch)
    quantized = ctx.staging / f".quantized-{fmt.name}.onnx"
    exclude = keep_float_nodes(ctx, mode)
    chunks = quantize_qdq(ctx.float_onnx(mode), quantized, reader, options.onnx_calib,
                          options.onnx_calib_percentile, for_tensorrt, exclude=exclude)
    proto = onnx.load(str(quantized))
    quantized.unlink()
    method = f"percentile {options.onnx_calib_percentile:g}" if options.onnx_calib == "percentile" else "min/max"
    kind = "symmetric int8" if for_tensorrt else "asymmetric uint8"
    chunked = f", read in {chunks} chunks to bound memory" if chunks > 1 else ""
    kept = f"; kept float (--keep-float): {len(exclude)} nodes of {', '.join(options.keep_float)}" if exclude else ""
    return proto, (f"calibrated on {reader.batches_read} batch(es) of {options.batch} ({method} activation ranges, "
                   f"{kind}{chunked}){kept}")


def keep_float_nodes(ctx: ExportContext, mode: str) -> list[str]:
    """The float `mode` graph's nodes of --keep-float's layers (convert/keep_float.py)."""
    if not ctx.options.keep_float:
        return []
    import onnx

    from segnet_edge.convert.keep_float import onnx_nodes

    return onnx_nodes(onnx.load(str(ctx.float_onnx(mode))), ctx.options.keep_float)


def qat_ranged_qdq(ctx: ExportContext, fmt: ExportFormat, mode: str):
    """(ONNX Runtime's uint8 QDQ graph of a symmetric QAT model's float twin with the ranges the QAT model
    learnt, no calibration set (convert/qat_ranges.py); the report's note on how)."""
    import onnx

    from segnet_edge.calibration.onnxruntime import ZeroFrameReader
    from segnet_edge.convert.qat_ranges import (
        check_every_range_learnt,
        clamp_as_trained,
        fake_quant_ranges,
        quantize_where_trained,
        range_overrides,
    )

    float_path = ctx.float_onnx(mode)
    learnt = range_overrides(onnx.load(str(float_path)), fake_quant_ranges(ctx.source.model()), INPUT_NAME)
    reader = ZeroFrameReader((ctx.options.batch, *ctx.input_size, 3), INPUT_NAME)
    quantized = ctx.staging / f".quantized-{fmt.name}.onnx"
    quantize_qdq(float_path, quantized, reader, "minmax", 0.0, for_tensorrt=False, overrides=learnt.overrides)
    proto = onnx.load(str(quantized))
    quantized.unlink()
    count = check_every_range_learnt(proto, learnt) + quantize_where_trained(proto, learnt)
    clamped = clamp_as_trained(proto, learnt)
    return proto, (f"ranges from the QAT model's fake-quant nodes (no calibration): {count} uint8 activation "
                   f"quantizers on the QAT steps, {clamped} ReLU outputs clipped at int8 code 127 as in QAT")


def write_artifact(ctx: ExportContext, fmt: ExportFormat, proto, mode: str, notes: list[str],
                   checks: list[Check]) -> ExportResult:
    """Embed the metadata (sealed with the payload digest), check the static shape and stage `proto` as `fmt`'s
    artifact."""
    from segnet_edge.atomic import write_bytes_atomic
    from segnet_edge.device.artifact_metadata import sealed_onnx_bytes

    metadata = ctx.artifact_metadata(fmt, mode)
    path = ctx.staging / fmt.artifact
    write_bytes_atomic(path, sealed_onnx_bytes(proto, metadata))
    return ExportResult(path=path, metadata=metadata, ops=op_set(proto), unpool_mode=mode,
                        checks=[_static_shape_check(proto, ctx.options.batch), *checks], notes=notes)
