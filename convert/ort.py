"""ONNX graphs for ONNX Runtime alone: SegNet's pooling as native MaxPool(Indices) + MaxUnpool.

model.onnx and model_int8.onnx must parse in TensorRT, so they spell the pooling index
with portable ops that ONNX Runtime runs slowly; these artifacts give ONNX Runtime users
(x86 and Arm CPUs, a board without TensorRT) the form its kernels are fast at
(convert/ort_pooling.py). The int8 graph keeps ONNX Runtime's own asymmetric uint8
activations: with no TensorRT to serve, a ReLU output keeps all 8 bits, not 7. A symmetric
QAT model's graph takes the ranges the model learnt instead of calibrated ones
(convert/qat_ranges.py), so it needs no calibration set.
"""

from __future__ import annotations

from segnet_edge.convert.context import ExportContext, ExportResult
from segnet_edge.convert.onnx import available, calibrated_qdq, qat_ranged_qdq, write_artifact
from segnet_edge.convert.ort_pooling import ORT_UNPOOL_MODE, pool_quantized_values
from segnet_edge.convert.registry import ExportFormat

__all__ = ["available", "export"]

NOTE = "ONNX Runtime only: TensorRT parses neither MaxPool's Indices output nor MaxUnpool (engines come from model.onnx)"


def export(ctx: ExportContext, fmt: ExportFormat) -> ExportResult:
    import onnx

    from segnet_edge.convert.source import LEARNT

    notes = [NOTE]
    if fmt.is_int8:
        if ctx.source.int8_ranges(fmt) == LEARNT:
            proto, note = qat_ranged_qdq(ctx, fmt, ORT_UNPOOL_MODE)
        else:
            proto, note = calibrated_qdq(ctx, fmt, ORT_UNPOOL_MODE, for_tensorrt=False)
        notes.append(note)
        pooled = pool_quantized_values(proto)
        notes.append(f"{pooled} index-recording MaxPool(s) read the uint8 tensor directly (no float round trip)")
    else:
        proto = onnx.load(str(ctx.float_onnx(ORT_UNPOOL_MODE)))
    return write_artifact(ctx, fmt, proto, ORT_UNPOOL_MODE, notes, [])
