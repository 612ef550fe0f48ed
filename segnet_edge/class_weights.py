"""Median-frequency class balancing, as SegNet trains on CamVid (Eigen & Fergus, 2015).

weight(c) = median_freq / freq(c), where freq(c) is the pixels of class c divided
by the pixels of the images in which c appears. Void pixels count for nothing.
"""

from __future__ import annotations

import numpy as np


def class_frequencies(labels: np.ndarray, num_classes: int, ignore_label: int | None) -> np.ndarray:
    counts = np.zeros(num_classes, dtype=np.float64)
    image_pixels = np.zeros(num_classes, dtype=np.float64)
    for label in labels:
        flat = label.reshape(-1)
        valid = flat < num_classes
        if ignore_label is not None:
            valid &= flat != ignore_label
        per_class = np.bincount(flat[valid], minlength=num_classes)[:num_classes]
        counts += per_class
        image_pixels[per_class > 0] += valid.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(image_pixels > 0, counts / image_pixels, 0.0)


def median_frequency_weights(labels: np.ndarray, num_classes: int, ignore_label: int | None) -> np.ndarray:
    """Per-class loss weights; a class absent from the training labels gets 0."""
    freq = class_frequencies(labels, num_classes, ignore_label)
    present = freq > 0
    if not present.any():
        return np.zeros(num_classes, dtype=np.float32)
    median = np.median(freq[present])
    return np.where(present, median / np.where(present, freq, 1.0), 0.0).astype(np.float32)
