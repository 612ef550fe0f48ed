"""Median-frequency class balancing, as SegNet trains on CamVid (Eigen & Fergus, 2015).

weight(c) = median_freq / freq(c), where freq(c) is the pixels of class c divided
by the pixels of the images in which c appears. Void pixels count for nothing.
The counts are kept label by label (`ClassCounter`), so a streamed split is
counted in the same pass that checks it.
"""

from __future__ import annotations

import numpy as np


class ClassCounter:
    """Pixels per class, and pixels of the images each class appears in, one label map at a time."""

    def __init__(self, num_classes: int, ignore_label: int | None):
        self.num_classes, self.ignore_label = num_classes, ignore_label
        self.counts = np.zeros(num_classes, dtype=np.float64)
        self.image_pixels = np.zeros(num_classes, dtype=np.float64)

    def add(self, label: np.ndarray) -> None:
        flat = label.reshape(-1)
        valid = flat < self.num_classes
        if self.ignore_label is not None:
            valid &= flat != self.ignore_label
        per_class = np.bincount(flat[valid], minlength=self.num_classes)[: self.num_classes]
        self.counts += per_class
        self.image_pixels[per_class > 0] += valid.sum()

    def frequencies(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.image_pixels > 0, self.counts / self.image_pixels, 0.0)

    def weights(self) -> np.ndarray:
        return weights_from_frequencies(self.frequencies())


def class_frequencies(labels: np.ndarray, num_classes: int, ignore_label: int | None) -> np.ndarray:
    counter = ClassCounter(num_classes, ignore_label)
    for label in labels:
        counter.add(label)
    return counter.frequencies()


def weights_from_frequencies(freq: np.ndarray) -> np.ndarray:
    """Per-class loss weights; a class absent from the training labels gets 0."""
    present = freq > 0
    if not present.any():
        return np.zeros(len(freq), dtype=np.float32)
    median = np.median(freq[present])
    return np.where(present, median / np.where(present, freq, 1.0), 0.0).astype(np.float32)


def median_frequency_weights(labels: np.ndarray, num_classes: int, ignore_label: int | None) -> np.ndarray:
    """Per-class loss weights; a class absent from the training labels gets 0."""
    return weights_from_frequencies(class_frequencies(labels, num_classes, ignore_label))
