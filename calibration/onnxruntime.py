"""ONNX Runtime adapter: the shared calibration set as a `CalibrationDataReader` for quantize_static.

Imports onnxruntime at module import: only the ONNX int8 exporter imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.device.metadata import Normalization

# ONNX Runtime's histogram calibrators keep every tensor of every batch they are fed in one
# collect_data call; feeding at most this many bytes of tensors per call bounds convert's memory.
CALIBRATION_CHUNK_BYTES = 1 << 30


class CalibrationReader(CalibrationDataReader):
    """Feeds `{input_name: float32 (batch, H, W, 3)}` per call, then None; `rewind()` starts over.

    `batch` must match the model's static batch dimension (`convert --batch`). `set_range` is the
    hook quantize_static's `CalibStridedMinMax` uses to read the set one chunk per collect_data call.
    """

    def __init__(self, calib: CalibrationSet, normalization: Normalization, input_name: str = "image",
                 batch: int = 1):
        self.calib = calib
        self.normalization = normalization
        self.input_name = input_name
        self.batch = batch
        self._iterator: Iterator[np.ndarray] | None = None
        self._position = 0  # batches taken from the iterator
        self._end: int | None = None
        self.batches_read = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._end is not None and self._position >= self._end:
            return None
        if self._iterator is None:
            self._iterator = self.calib.batches(self.normalization, self.batch)
        batch = next(self._iterator, None)
        if batch is None:
            return None
        self._position += 1
        self.batches_read += 1
        return {self.input_name: batch}

    def set_range(self, start_index: int, end_index: int) -> None:
        """Batches start_index..end_index-1 come next, then None."""
        if start_index < self._position:
            self.rewind()
        if self._iterator is None:
            self._iterator = self.calib.batches(self.normalization, self.batch)
        while self._position < start_index and next(self._iterator, None) is not None:
            self._position += 1
        self._end = end_index

    def rewind(self) -> None:
        self._iterator = None
        self._position = 0
        self._end = None

    def __len__(self) -> int:
        return len(self.calib) // self.batch


class ZeroFrameReader(CalibrationDataReader):
    """One all-zero batch, then None: ONNX Runtime's quantizer runs its calibration pass even when every
    range comes from elsewhere (a QAT model's `TensorQuantOverrides`), and needs an input of the right shape."""

    def __init__(self, shape: tuple[int, ...], input_name: str = "image"):
        self.shape = shape
        self.input_name = input_name
        self._done = False

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._done:
            return None
        self._done = True
        return {self.input_name: np.zeros(self.shape, np.float32)}

    def rewind(self) -> None:
        self._done = False


def chunk_batches(total_batches: int, batch_bytes: int, budget_bytes: int = CALIBRATION_CHUNK_BYTES) -> int:
    """Batches per collect_data call: the largest divisor of total_batches (quantize_static requires one)
    whose tensors fit budget_bytes, at least 1."""
    fit = max(1, budget_bytes // max(1, batch_bytes))
    return max(d for d in range(1, min(fit, total_batches) + 1) if total_batches % d == 0)
