"""TFLite adapter: the shared calibration set as a `representative_dataset` for TFLiteConverter."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice

import numpy as np

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.device.metadata import Normalization


def representative_dataset(calib: CalibrationSet, normalization: Normalization,
                           limit: int | None = None) -> Callable[[], Iterator[list[np.ndarray]]]:
    """A callable the converter may call more than once; each call yields [float32 (1, H, W, 3)] per frame.

    A generator function, not a generator, because the converter iterates it anew
    for each calibration pass.
    """

    def generate() -> Iterator[list[np.ndarray]]:
        for x in islice(calib.inputs(normalization), limit):
            yield [x[None]]

    return generate
