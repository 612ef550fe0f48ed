"""ONNX Runtime adapter: the shared calibration set as a `CalibrationDataReader` for quantize_static.

Imports onnxruntime at module import: only the ONNX int8 exporter imports this module.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.device.metadata import Normalization


class CalibrationReader(CalibrationDataReader):
    """Feeds `{input_name: float32 (batch, H, W, 3)}` per call, then None; `rewind()` starts over.

    `batch` must match the model's static batch dimension (`convert --batch`).
    """

    def __init__(self, calib: CalibrationSet, normalization: Normalization, input_name: str = "image",
                 batch: int = 1):
        self.calib = calib
        self.normalization = normalization
        self.input_name = input_name
        self.batch = batch
        self._iterator: Iterator[np.ndarray] | None = None
        self.batches_read = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iterator is None:
            self._iterator = self.calib.batches(self.normalization, self.batch)
        batch = next(self._iterator, None)
        if batch is None:
            return None
        self.batches_read += 1
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._iterator = None

    def __len__(self) -> int:
        return len(self.calib) // self.batch
