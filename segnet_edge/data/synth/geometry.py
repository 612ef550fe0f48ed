"""The pinhole camera and the facade planes the scene is projected through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Camera:
    """Pinhole camera at height 1 looking along +Z; image y grows downwards."""

    yh: float  # horizon row
    xv: float  # vanishing point column
    f: float  # focal length in pixels

    def project(self, x, height, z):
        z = np.maximum(np.asarray(z, dtype=np.float64), 1e-3)
        return self.xv + self.f * np.asarray(x) / z, self.yh + self.f * (1.0 - np.asarray(height)) / z


#: Columns of a facade segment table (one row per segment), gathered per pixel in one indexing step.
_KIND, _TOP, _START, _PITCH_Z, _PITCH_H, _FILL_Z, _FILL_H, _GROUND_FLOOR = range(8)
_COLOUR, _GLASS = slice(8, 11), slice(11, 14)


@dataclass
class _Side:
    """The facade plane on one side of the street, cut into segments along Z (0 gap, 1 building, 2 trees)."""

    wall_x: float
    starts: np.ndarray  # segment start depths, ascending, starts[0] == 0
    table: np.ndarray  # (segments, 14) float32, columns as above

    def at(self, z: np.ndarray) -> np.ndarray:
        return np.clip(np.searchsorted(self.starts, z, side="right") - 1, 0, len(self.starts) - 1)
