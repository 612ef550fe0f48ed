"""Percentile activation ranges for the int8 TFLite model, as ONNX Runtime's QDQ path already has.

The TFLite converter sets each activation's int8 range from the min and max it saw on the
calibration frames, so one rare outlier coarsens the steps of a whole tensor, and SegNet's
pooling indices in that tensor are then decided by more exact ties. Here the converter
only calibrates (`_experimental_calibrate_only`, the hook TensorFlow's own
QuantizationDebugger uses), the frames are run again through that float model to
histogram every calibrated tensor, each range is narrowed to the values between the
(100 - p)th and pth percentile, and the converter's MLIR quantizer quantizes with those
ranges, exactly as `convert()` would with its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

BINS = 4096  # per tensor, over its calibrated [min, max]: a percentile lands within 1/4096 of the range


@dataclass(frozen=True)
class RangeChange:
    tensors: int  # activation ranges the calibration stored
    narrowed: int  # of those, ranges the percentile made narrower
    median_kept: float  # median of new span / old span over the narrowed ones

    def note(self, percentile: float) -> str:
        if not self.narrowed:
            return f"activation ranges: percentile {percentile:g} left all {self.tensors} min/max ranges as they were"
        return (f"activation ranges: percentile {percentile:g} narrowed {self.narrowed} of {self.tensors} "
                f"calibrated min/max ranges (median span kept {100 * self.median_kept:.0f}%)")


def _calibrated_tensors(model) -> dict[int, tuple[float, float]]:
    """{tensor index: (min, max)} of the first subgraph's float tensors the calibrator gave a range."""
    ranges = {}
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        q = tensor.quantization
        if q is not None and q.min is not None and q.max is not None and len(q.min) == 1 and len(q.max) == 1:
            ranges[index] = (float(q.min[0]), float(q.max[0]))
    return ranges


def percentile_ranges(calibrated: bytes, representative: Callable[[], Iterator[list[np.ndarray]]],
                      percentile: float) -> tuple[bytes, RangeChange]:
    """The calibrated float model with every stored activation range narrowed to its percentile range.

    A range keeps 0 inside it (int8 needs an exact zero) and never widens; one the calibrator did not take
    from the frames (its min/max differ from what the frames give) is left as it is.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    ranges = _calibrated_tensors(model)
    histograms = {i: np.zeros(BINS, np.int64) for i in ranges}
    seen = {i: [np.inf, -np.inf] for i in ranges}
    # Without XNNPACK: inside a delegated partition, intermediate tensors are never written back.
    interpreter = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
                              num_threads=os.cpu_count() or 1)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    for (frame,) in representative():
        interpreter.set_tensor(input_index, frame)
        interpreter.invoke()
        for index, (low, high) in ranges.items():
            if high > low:
                values = interpreter.get_tensor(index)
                histograms[index] += np.histogram(values, BINS, (low, high))[0]
                seen[index] = [min(seen[index][0], float(values.min())), max(seen[index][1], float(values.max()))]
    tail = (100.0 - percentile) / 100.0
    spans_kept = []
    for index, (low, high) in ranges.items():
        counts = histograms[index]
        total = counts.sum()
        if total == 0 or high <= low or not np.allclose(seen[index], (low, high), rtol=0, atol=1e-4 * (high - low)):
            continue  # a range the converter set itself (e.g. a lookup table's), not the frames' min/max
        cumulative = np.cumsum(counts) / total
        edges = np.linspace(low, high, BINS + 1)
        new_low = min(0.0, max(low, float(edges[np.searchsorted(cumulative, tail)])))
        new_high = max(0.0, min(high, float(edges[min(BINS, np.searchsorted(cumulative, 1.0 - tail) + 1)])))
        if (new_low, new_high) == (low, high):
            continue
        q = model.subgraphs[0].tensors[index].quantization
        q.min, q.max = [new_low], [new_high]
        spans_kept.append((new_high - new_low) / (high - low))
    change = RangeChange(len(ranges), len(spans_kept), float(np.median(spans_kept)) if spans_kept else 1.0)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), change


def quantize_calibrated(calibrated: bytes, io_dtype: str, keep_float: list[str] | None = None) -> bytes:
    """What `TFLiteConverter.convert()` does after calibrating (TF 2.21): the MLIR quantizer, per-channel,
    int8 activations, `io_dtype` input and output. `keep_float`: ops (by output tensor name) left in float,
    with QUANTIZE/DEQUANTIZE around them (convert/keep_float.py)."""
    from tensorflow.lite.python.convert import mlir_quantize

    from segnet_edge._tf import tf

    dtype = getattr(tf, io_dtype)
    return bytes(mlir_quantize(calibrated, disable_per_channel=False, input_data_type=dtype, output_data_type=dtype,
                               denylisted_nodes=list(keep_float) if keep_float else None))
