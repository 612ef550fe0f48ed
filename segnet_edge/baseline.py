"""A classifier that sees one pixel's colour and nothing else.

It is the best any per-pixel colour rule can do on the training data (the
majority class of each quantised colour), so a SegNet that beats it clearly is
using context: shape, texture and position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ColourBaseline:
    levels: int = 16
    table: np.ndarray | None = None  # (levels**3,) majority class per colour bin

    def _bins(self, images: np.ndarray) -> np.ndarray:
        q = (images.astype(np.int64) * self.levels) // 256
        return (q[..., 0] * self.levels + q[..., 1]) * self.levels + q[..., 2]

    def fit(self, images: np.ndarray, labels: np.ndarray, num_classes: int,
            ignore_label: int | None = None) -> ColourBaseline:
        return self.fit_batches([(images, labels)], num_classes, ignore_label)

    def fit_batches(self, batches, num_classes: int, ignore_label: int | None = None) -> ColourBaseline:
        """Fit on (images, labels) batches, counted one batch at a time (a streamed split fits in constant memory)."""
        counts = np.zeros(self.levels**3 * num_classes, dtype=np.int64)
        for images, labels in batches:
            bins = self._bins(images).reshape(-1)
            flat = labels.reshape(-1).astype(np.int64)
            keep = flat < num_classes
            if ignore_label is not None:
                keep &= flat != ignore_label
            counts += np.bincount(bins[keep] * num_classes + flat[keep], minlength=counts.size)
        counts = counts.reshape(self.levels**3, num_classes)
        overall = counts.sum(axis=0).argmax()
        table = counts.argmax(axis=1)
        table[counts.sum(axis=1) == 0] = overall  # unseen colours: the most common class
        self.table = table.astype(np.uint8)
        return self

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self.table is None:
            raise RuntimeError("fit the baseline first")
        return self.table[self._bins(images)]
