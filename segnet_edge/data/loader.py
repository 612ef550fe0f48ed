"""Read and check image/label pairs at the model's input size (numpy + OpenCV), in memory or streamed.

Every label is checked, once, before training starts: a size mismatch with
its image, or a value that is neither a class nor the ignore label, stops the
run with a one-line error naming the file, instead of a NaN loss hours later.

A split small enough is held in memory (`LoadedSplit`); a larger one is a
`StreamedSplit`: its samples are checked in one pass that keeps nothing, and
read again, batch by batch, whenever they are used, so memory does not grow
with the number of frames. Both read a sample with `load_sample`, so their
frames are the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segnet_edge.data.layout import ClassInfo, Sample, find_samples
from segnet_edge.device.errors import DataError
from segnet_edge.device.preprocess import resize_frame, resize_labels

BAD_SAMPLE_POLICIES = ("fail", "skip")
#: `--input-pipeline` choices: auto holds a split in memory when its frames fit IN_MEMORY_LIMIT_BYTES.
INPUT_PIPELINES = ("auto", "memory", "stream")
#: Decoded frames + labels at the input size above which `auto` streams (a CamVid train split at
#: 360x480 is 254 MB; Cityscapes' 2,975 frames at the same size 2 GB).
IN_MEMORY_LIMIT_BYTES = 1 << 30


@dataclass
class LoadedSplit:
    """uint8 BGR frames (N, H, W, 3) and uint8 labels (N, H, W) at the model's input size."""

    images: np.ndarray
    labels: np.ndarray | None
    samples: list[Sample]
    skipped: list[str] = field(default_factory=list)  # "path: reason" per skipped sample

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield self.images[start:stop], None if self.labels is None else self.labels[start:stop]


@dataclass
class StreamedSplit:
    """Samples read from disk whenever they are used; `skipped` grows as a stream passes over bad ones
    (a split checked up front by `scan_samples` holds only good samples, and its skips so far)."""

    samples: list[Sample]
    input_size: tuple[int, int]
    info: ClassInfo | None
    on_bad_sample: str = "fail"
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        return load_sample(self.samples[index], self.input_size, self.info)

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Checked, resized batches in list order, read ahead by a thread pool; memory bounded by the batch."""
        images, labels = [], []
        for _, image, label in iter_samples(self.samples, self.input_size, self.info, self.on_bad_sample,
                                            self.skipped):
            images.append(image)
            labels.append(label)
            if len(images) == batch_size:
                yield np.stack(images), None if self.info is None else np.stack(labels)
                images, labels = [], []
        if images:
            yield np.stack(images), None if self.info is None else np.stack(labels)


Split = LoadedSplit | StreamedSplit


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


def load_sample(sample: Sample, input_size: tuple[int, int],
                info: ClassInfo | None) -> tuple[np.ndarray, np.ndarray | None]:
    """One frame (and its checked label when `info` is given) at `input_size`; DataError naming the file."""
    image = read_image(sample.image)
    label = None
    if info is not None:
        if sample.label is None:
            raise DataError(f"{sample.image}: has no label; give a dataset with labels")
        raw = read_labels(sample.label)
        if raw.shape[:2] != image.shape[:2]:
            raise DataError(
                f"{sample.label}: label is {raw.shape[1]}x{raw.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}; labels must match their images"
            )
        check_labels(raw, sample.label, info)
        label = resize_labels(raw.astype(np.uint8), input_size)
    return resize_frame(image, input_size), label


def _check_policy(on_bad_sample: str) -> None:
    if on_bad_sample not in BAD_SAMPLE_POLICIES:
        raise DataError(f"--on-bad-sample must be one of {BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")


def iter_samples(samples: list[Sample], input_size: tuple[int, int], info: ClassInfo | None,
                 on_bad_sample: str, skipped: list[str], progress: str | None = None,
                 workers: int | None = None) -> Iterator[tuple[Sample, np.ndarray, np.ndarray | None]]:
    """(sample, frame, label) in list order, decoded by a few threads (OpenCV releases the GIL) at most
    2 x `workers` samples ahead; a bad sample raises, or with `skip` is appended to `skipped`."""
    _check_policy(on_bad_sample)
    workers = workers or min(8, os.cpu_count() or 1)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(samples), desc=progress, unit="img", leave=False, disable=None)  # no bar off a TTY

    def read(sample: Sample):
        try:
            return load_sample(sample, input_size, info)
        except DataError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = []
        queued = 0
        try:
            while pending or queued < len(samples):
                while queued < len(samples) and len(pending) < 2 * workers:
                    pending.append((samples[queued], pool.submit(read, samples[queued])))
                    queued += 1
                sample, future = pending.pop(0)
                result = future.result()
                if bar is not None:
                    bar.update()
                if isinstance(result, DataError):
                    if on_bad_sample == "fail":
                        raise result
                    skipped.append(str(result))
                    continue
                yield sample, result[0], result[1]
        finally:
            for _, future in pending:
                future.cancel()
            if bar is not None:
                bar.close()


def load_samples(samples: list[Sample], input_size: tuple[int, int], info: ClassInfo | None,
                 on_bad_sample: str = "fail", progress: bool = False) -> LoadedSplit:
    """Load frames (and labels when `info` is given) resized to `input_size`."""
    _check_policy(on_bad_sample)
    images, labels, kept, skipped = [], [], [], []
    for sample, image, label in iter_samples(samples, input_size, info, on_bad_sample, skipped,
                                             "loading" if progress else None):
        images.append(image)
        labels.append(label)
        kept.append(sample)
    if not images:
        raise DataError("no usable samples: every sample was skipped" if skipped else "the dataset is empty")
    return LoadedSplit(
        images=np.stack(images),
        labels=np.stack(labels) if info is not None else None,
        samples=kept,
        skipped=skipped,
    )


def scan_samples(samples: list[Sample], input_size: tuple[int, int], info: ClassInfo | None,
                 on_bad_sample: str = "fail", progress: bool = False,
                 each_label: Callable[[np.ndarray], None] | None = None) -> StreamedSplit:
    """Check every sample as `load_samples` does, keeping none of the pixels: a StreamedSplit of the good ones.

    `each_label` sees every kept label at the input size (class counting in the same pass).
    """
    _check_policy(on_bad_sample)
    kept, skipped = [], []
    for sample, _, label in iter_samples(samples, input_size, info, on_bad_sample, skipped,
                                         "checking" if progress else None):
        kept.append(sample)
        if each_label is not None and label is not None:
            each_label(label)
    if not kept:
        raise DataError("no usable samples: every sample was skipped" if skipped else "the dataset is empty")
    return StreamedSplit(kept, tuple(input_size), info, "fail", skipped)


def decoded_bytes(frames: int, input_size: tuple[int, int], with_labels: bool = True) -> int:
    """What `frames` frames (and labels) take in memory at `input_size`."""
    height, width = input_size
    return frames * height * width * (4 if with_labels else 3)


def choose_pipeline(frames: int, input_size: tuple[int, int], requested: str = "auto",
                    limit: int = IN_MEMORY_LIMIT_BYTES) -> tuple[str, str]:
    """("memory" | "stream", why): `auto` holds the split in memory when its decoded frames fit `limit`."""
    if requested not in INPUT_PIPELINES:
        raise DataError(f"--input-pipeline must be one of {INPUT_PIPELINES}, got {requested!r}")
    size = decoded_bytes(frames, input_size)
    amount = f"{frames} frames at {input_size[0]}x{input_size[1]} = {size / 2**20:.1f} MiB decoded"
    if requested != "auto":
        return requested, f"{amount}, --input-pipeline {requested}"
    if size <= limit:
        return "memory", f"{amount}, within the {limit / 2**20:.0f} MiB in-memory limit"
    return "stream", f"{amount}, over the {limit / 2**20:.0f} MiB in-memory limit"


def load_split(root: str | Path, split: str, input_size: tuple[int, int], info: ClassInfo | None,
               on_bad_sample: str = "fail", progress: bool = False) -> LoadedSplit:
    """find_samples + load_samples."""
    return load_samples(find_samples(root, split), input_size, info, on_bad_sample, progress)


def stream_split(root: str | Path, split: str, input_size: tuple[int, int], info: ClassInfo | None,
                 on_bad_sample: str = "fail") -> StreamedSplit:
    """find_samples, unread: each pass reads, checks and resizes the frames again (evaluation's one pass)."""
    _check_policy(on_bad_sample)
    return StreamedSplit(find_samples(root, split), tuple(input_size), info, on_bad_sample)
