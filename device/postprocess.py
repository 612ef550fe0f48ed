"""Model output -> label map: argmax over classes, a confidence estimate, class shares.

Argmax runs on the raw (possibly int8) output: dequantization is affine with a
positive scale, so it cannot change the winner and is applied only where real
values are reported (the confidence).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segnet_edge.device.metadata import ModelMetadata
from segnet_edge.device.preprocess import dequantize, resize_labels

#: Confidence is the mean top-class probability over every CONFIDENCE_STRIDE-th pixel in each direction.
CONFIDENCE_STRIDE = 4


@dataclass
class Segmentation:
    labels: np.ndarray  # (H, W) uint8 at the model's resolution
    frame_size: tuple[int, int]  # (h, w) of the frame it belongs to
    class_fractions: np.ndarray  # (num_classes,) share of model pixels per class
    confidence: float | None  # mean top-class probability (None for label-output models)
    _frame_labels: np.ndarray | None = None

    @property
    def frame_labels(self) -> np.ndarray:
        """Labels at the frame's resolution (nearest neighbour), computed on first use: the output
        thread pays for it, not the inference loop."""
        if self._frame_labels is None:
            self._frame_labels = resize_labels(self.labels, self.frame_size)
        return self._frame_labels


def argmax_classes(scores: np.ndarray) -> np.ndarray:
    """(H, W, C) scores -> (H, W) uint8 labels; OpenCV's reduceArgMax is ~3x numpy's on small C."""
    import cv2

    height, width, channels = scores.shape
    if hasattr(cv2, "reduceArgMax") and scores.dtype in (np.float32, np.int8, np.uint8):
        flat = np.ascontiguousarray(scores).reshape(height * width, channels)
        return cv2.reduceArgMax(flat, 1).reshape(height, width).astype(np.uint8)
    return scores.argmax(axis=-1).astype(np.uint8)


def label_map(output: np.ndarray) -> np.ndarray:
    """A batch of model outputs -> (N, H, W) uint8 labels: the argmax of (N, H, W, C) scores (raw int8 or
    float, Keras' or an artifact's), or an (N, H, W) label map (--output labels) as it is."""
    output = np.asarray(output)
    if output.ndim == 3:
        return output.astype(np.uint8, copy=False)
    count, height, width, channels = output.shape
    return argmax_classes(output.reshape(count * height, width, channels)).reshape(count, height, width)


def postprocess(raw: np.ndarray, metadata: ModelMetadata, frame_size: tuple[int, int]) -> Segmentation:
    """One output batch of size 1 -> Segmentation; `frame_size` is the frame's (height, width)."""
    out = raw[0]
    confidence = None
    if metadata.output == "labels" or out.ndim == 2:
        labels = out.astype(np.uint8, copy=False)
    else:
        labels = label_map(raw)[0]
        top = out[::CONFIDENCE_STRIDE, ::CONFIDENCE_STRIDE].max(axis=-1)
        confidence = float(dequantize(top, metadata.output_quantization).mean())
    counts = np.bincount(labels.ravel(), minlength=metadata.num_classes)[: metadata.num_classes]
    fractions = counts / max(1, labels.size)
    return Segmentation(labels, tuple(frame_size), fractions, confidence)
