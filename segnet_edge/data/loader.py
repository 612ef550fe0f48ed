"""Read and check image/label pairs into memory at the model's input size (numpy + OpenCV).

Every label is checked here, once, before training starts: a size mismatch with
its image, or a value that is neither a class nor the ignore label, stops the
run with a one-line error naming the file, instead of a NaN loss hours later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segnet_edge.data.layout import ClassInfo, Sample, find_samples
from segnet_edge.device.errors import DataError
from segnet_edge.device.preprocess import resize_frame, resize_labels

BAD_SAMPLE_POLICIES = ("fail", "skip")


@dataclass
class LoadedSplit:
    """uint8 BGR frames (N, H, W, 3) and uint8 labels (N, H, W) at the model's input size."""

    images: np.ndarray
    labels: np.ndarray | None
    samples: list[Sample]
    skipped: list[str] = field(default_factory=list)  # "path: reason" per skipped sample

    def __len__(self) -> int:
        return len(self.images)


def read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: unreadable image; replace the file or use --on-bad-sample skip")
    return image


def read_labels(path: Path) -> np.ndarray:
    import cv2

    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise DataError(f"{path}: unreadable label image; replace the file or use --on-bad-sample skip")
    if labels.ndim == 3:
        channels = labels.shape[2]
        if channels >= 3 and not (np.array_equal(labels[..., 0], labels[..., 1])
                                  and np.array_equal(labels[..., 0], labels[..., 2])):
            raise DataError(f"{path}: label is a colour image; give one class index per pixel (8-bit grey PNG)")
        labels = labels[..., 0]
    return labels


def check_labels(labels: np.ndarray, path: Path, info: ClassInfo) -> None:
    bad = labels >= info.num_classes
    if info.ignore_label is not None:
        bad &= labels != info.ignore_label
    if bad.any():
        values = sorted(int(v) for v in np.unique(labels[bad]))[:5]
        hint = f"--ignore-label {values[0]}" if len(values) == 1 else "a --classes file with more classes"
        raise DataError(
            f"{path}: label values {values} are not classes 0..{info.num_classes - 1} nor the ignore label "
            f"{info.ignore_label}; fix the labels or pass {hint}"
        )


def load_samples(samples: list[Sample], input_size: tuple[int, int], info: ClassInfo | None,
                 on_bad_sample: str = "fail", progress: bool = False) -> LoadedSplit:
    """Load frames (and labels when `info` is given) resized to `input_size`."""
    if on_bad_sample not in BAD_SAMPLE_POLICIES:
        raise DataError(f"--on-bad-sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")
    with_labels = info is not None
    images, labels, kept, skipped = [], [], [], []
    iterator = samples
    if progress:
        from tqdm import tqdm

        iterator = tqdm(samples, desc="loading", unit="img", leave=False, disable=None)  # no bar off a TTY
    for sample in iterator:
        try:
            image = read_image(sample.image)
            if with_labels:
                if sample.label is None:
                    raise DataError(f"{sample.image}: has no label; give a dataset with labels")
                label = read_labels(sample.label)
                if label.shape[:2] != image.shape[:2]:
                    raise DataError(
                        f"{sample.label}: label is {label.shape[1]}x{label.shape[0]} but its image is "
                        f"{image.shape[1]}x{image.shape[0]}; labels must match their images"
                    )
                check_labels(label, sample.label, info)
                labels.append(resize_labels(label.astype(np.uint8), input_size))
        except DataError as exc:
            if on_bad_sample == "fail":
                raise
            skipped.append(str(exc))
            continue
        images.append(resize_frame(image, input_size))
        kept.append(sample)
    if not images:
        raise DataError("no usable samples: every sample was skipped" if skipped else "the dataset is empty")
    return LoadedSplit(
        images=np.stack(images),
        labels=np.stack(labels) if with_labels else None,
        samples=kept,
        skipped=skipped,
    )


def load_split(root: str | Path, split: str, input_size: tuple[int, int], info: ClassInfo | None,
               on_bad_sample: str = "fail", progress: bool = False) -> LoadedSplit:
    """find_samples + load_samples."""
    return load_samples(find_samples(root, split), input_size, info, on_bad_sample, progress)
