"""Segmentation scores from plain label and prediction arrays (numpy only).

Keras models, TFLite, ONNX and TensorRT artifacts are all scored by this code,
so their numbers can be compared. The ignore label (void) is excluded, as in
the SegNet paper.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def confusion_matrix(
    labels: np.ndarray, predictions: np.ndarray, num_classes: int, ignore_label: int | None = None
) -> np.ndarray:
    """Rows: true class, columns: predicted class; pixels labelled `ignore_label` are skipped."""
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    predictions = np.asarray(predictions).reshape(-1).astype(np.int64)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in size: {labels.size} vs {predictions.size}")
    keep = (labels >= 0) & (labels < num_classes)
    if ignore_label is not None:
        keep &= labels != ignore_label
    index = labels[keep] * num_classes + np.clip(predictions[keep], 0, num_classes - 1)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accumulate_confusion(batches, predict, num_classes: int, ignore_label: int | None = None,
                         progress: str | None = None, total: int | None = None) -> tuple[np.ndarray, int]:
    """(confusion matrix, frames) of `predict` over (frames, labels) batches, summed batch by batch, so
    memory stays one batch whatever the split's length. `progress`: a bar of that name on a TTY."""
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    frames = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=progress, unit="frame", leave=False, disable=None)  # no bar off a TTY
    try:
        for images, labels in batches:
            cm += confusion_matrix(labels, predict(images), num_classes, ignore_label)
            frames += len(images)
            if bar is not None:
                bar.update(len(images))
    finally:
        if bar is not None:
            bar.close()
    return cm, frames


@dataclass
class SegmentationScores:
    global_accuracy: float
    class_accuracy: float
    mean_iou: float
    per_class_iou: list[float]  # NaN for a class absent from both labels and predictions
    per_class_accuracy: list[float]  # NaN for a class absent from the labels

    def to_json(self) -> dict:
        data = asdict(self)
        data["per_class_iou"] = [None if np.isnan(v) else v for v in self.per_class_iou]
        data["per_class_accuracy"] = [None if np.isnan(v) else v for v in self.per_class_accuracy]
        return data


def scores(cm: np.ndarray) -> SegmentationScores:
    """Global accuracy, class-average accuracy and mean IoU over classes that occur."""
    cm = np.asarray(cm, dtype=np.float64)
    true_positive = np.diag(cm)
    label_count = cm.sum(axis=1)
    predicted_count = cm.sum(axis=0)
    union = label_count + predicted_count - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, true_positive / union, np.nan)
        accuracy = np.where(label_count > 0, true_positive / label_count, np.nan)
    total = cm.sum()
    present = label_count > 0
    return SegmentationScores(
        global_accuracy=float(true_positive.sum() / total) if total else float("nan"),
        class_accuracy=float(np.nanmean(accuracy)) if present.any() else float("nan"),
        # mIoU over the classes present in the labels, as the paper's evaluation does
        mean_iou=float(np.nanmean(np.where(present, iou, np.nan))) if present.any() else float("nan"),
        per_class_iou=[float(v) for v in iou],
        per_class_accuracy=[float(v) for v in accuracy],
    )


def argmax_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels where two probability (or label) maps pick the same class."""
    a_labels = a.argmax(-1) if a.ndim == 4 else a
    b_labels = b.argmax(-1) if b.ndim == 4 else b
    return float(np.mean(a_labels == b_labels))
