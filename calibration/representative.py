"""The one representative set every int8 path calibrates with: built once, stored as `calib.npz`, reused.

Why one set: TFLite, ONNX Runtime and TensorRT each pick int8 ranges from sample
inputs; if each read its own frames, three int8 artifacts of one model would differ
for reasons nobody could see. Here the frames are chosen once (deterministic for a
seed), resized with `device/preprocess.resize_frame`, and each adapter turns them
into model inputs with `device/preprocess.preprocess`, the function the board runs.

Frames are stored as uint8 BGR at the model's input size, not as float inputs: a
quarter of the bytes, and `normalize` is exact arithmetic, so applying it at use
(with the normalisation in the model's own metadata) gives the board's bytes exactly.

A few frames beyond the calibration frames are set aside ("held out", with labels when
the source is a labelled dataset), so `convert` can prove parity on frames that did
not pick the int8 ranges.

Sources: a dataset (any layout `segnet_edge.data.layout` reads; one split), a folder
of images, or a video file. numpy + OpenCV only: the board can build a set too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from segnet_edge.data.loader import BAD_SAMPLE_POLICIES  # the same choice as training's --on-bad-sample
from segnet_edge.device.errors import DataError
from segnet_edge.device.metadata import Normalization
from segnet_edge.device.preprocess import preprocess, resize_frame, resize_labels

#: Bump when the layout of calib.npz changes; older files are rebuilt, never misread.
FORMAT_VERSION = 1
SOURCE_KINDS = ("auto", "dataset", "folder", "video")
T = TypeVar("T")
#: Frames a calibration set holds unless asked otherwise (fewer when the source has fewer).
DEFAULT_CALIB_FRAMES = 200
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".h264")


@dataclass(frozen=True)
class CalibrationRecipe:
    """How a set is made. Two equal recipes make byte-identical sets, so a stored set is reused."""

    source: str
    size: tuple[int, int]  # (height, width): the model's input size
    count: int = DEFAULT_CALIB_FRAMES
    seed: int = 0
    split: str = "train"  # dataset sources only
    holdout: int = 8  # frames set aside for parity checks, from the images not used for calibration
    kind: str = "auto"
    on_bad_sample: str = "fail"  # image sources only; a video has no per-frame files

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise DataError(f"unknown source kind {self.kind!r}; use one of {', '.join(SOURCE_KINDS)}")
        if self.on_bad_sample not in BAD_SAMPLE_POLICIES:
            raise DataError(f"unknown --on-bad-sample {self.on_bad_sample!r}; use one of "
                            f"{', '.join(BAD_SAMPLE_POLICIES)}")
        if int(self.count) < 1:
            raise DataError(f"--count must be at least 1 (got {self.count})")
        if int(self.holdout) < 0:
            raise DataError(f"--holdout must be 0 or more (got {self.holdout})")
        if len(self.size) != 2 or min(self.size) < 1:
            raise DataError(f"--size must be HEIGHTxWIDTH (got {self.size})")

    def resolved(self) -> CalibrationRecipe:
        """The same recipe with an absolute source and a concrete kind (what is stored and compared)."""
        source = Path(self.source).expanduser()
        if not source.exists():
            raise DataError(f"{source}: no such file or folder; give a dataset, an image folder or a video file")
        kind = detect_kind(source, self.split) if self.kind == "auto" else self.kind
        return CalibrationRecipe(str(source.resolve()), (int(self.size[0]), int(self.size[1])), int(self.count),
                                 int(self.seed), self.split, int(self.holdout), kind, self.on_bad_sample)

    def to_json(self) -> dict:
        data = asdict(self)
        data["size"] = list(self.size)
        return data

    @classmethod
    def from_json(cls, data: dict) -> CalibrationRecipe:
        return cls(source=str(data["source"]), size=(int(data["size"][0]), int(data["size"][1])),
                   count=int(data["count"]), seed=int(data["seed"]), split=str(data["split"]),
                   holdout=int(data["holdout"]), kind=str(data["kind"]),
                   on_bad_sample=str(data.get("on_bad_sample", "fail")))


@dataclass
class CalibrationSet:
    """Calibration frames plus held-out frames, uint8 BGR (N, H, W, 3) at the model's input size."""

    recipe: CalibrationRecipe
    frames: np.ndarray
    names: list[str]
    holdout_frames: np.ndarray
    holdout_names: list[str]
    holdout_labels: np.ndarray | None = None  # uint8 (M, H, W) when the source is a labelled dataset
    skipped: list[str] = field(default_factory=list)  # "file: reason" per sample passed over (--on-bad-sample skip)
    created: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S%z"))

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def check_size(self, size: tuple[int, int], where: str = "calibration set") -> None:
        """Frames of another size would calibrate ranges of a different image; refuse them."""
        if tuple(size) != self.size:
            raise DataError(
                f"{where}: frames are {self.size[0]}x{self.size[1]} but the model takes {size[0]}x{size[1]}; "
                f"rebuild it with `segnet-edge calibrate --size {size[0]}x{size[1]}`"
            )

    def inputs(self, normalization: Normalization, holdout: bool = False) -> Iterator[np.ndarray]:
        """One float32 (H, W, 3) model input per frame, made by the device's own preprocess()."""
        frames = self.holdout_frames if holdout else self.frames
        for frame in frames:
            yield preprocess(frame, self.size, normalization)

    def batches(self, normalization: Normalization, batch_size: int = 1) -> Iterator[np.ndarray]:
        """Contiguous float32 (B, H, W, 3) batches; a last partial batch is dropped (static-batch models)."""
        if batch_size < 1:
            raise DataError(f"batch size must be at least 1 (got {batch_size})")
        if len(self) < batch_size:
            raise DataError(f"the calibration set has {len(self)} frames, fewer than one batch of {batch_size}; "
                            "build a larger set (--count) or lower --batch")
        batch: list[np.ndarray] = []
        for x in self.inputs(normalization):
            batch.append(x)
            if len(batch) == batch_size:
                yield np.ascontiguousarray(np.stack(batch), dtype=np.float32)
                batch = []

    def to_json(self) -> dict:
        """What a report says about the set (no pixels)."""
        return {
            "recipe": self.recipe.to_json(),
            "frames": len(self),
            "holdout_frames": len(self.holdout_frames),
            "holdout_labels": self.holdout_labels is not None,
            "skipped": list(self.skipped),
            "size": list(self.size),
            "created": self.created,
        }

    # --- storage ------------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write `calib.npz` atomically (uncompressed: it is read often and compresses poorly)."""
        from segnet_edge.atomic import atomic_path

        path = Path(path)
        meta = {"format_version": FORMAT_VERSION, "recipe": self.recipe.to_json(), "created": self.created,
                "names": self.names, "holdout_names": self.holdout_names, "skipped": self.skipped}
        arrays = {"frames": self.frames, "holdout_frames": self.holdout_frames, "meta": np.array(json.dumps(meta))}
        if self.holdout_labels is not None:
            arrays["holdout_labels"] = self.holdout_labels
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
        return path


def load_calibration_set(path: str | Path) -> CalibrationSet:
    """Read a `calib.npz` written by `CalibrationSet.save`; one-line DataError on anything else."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such calibration set; build one with `segnet-edge calibrate`")
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if meta.get("format_version") != FORMAT_VERSION:
                raise DataError(f"{path}: calibration set format {meta.get('format_version')} is not "
                                f"{FORMAT_VERSION}; rebuild it with `segnet-edge calibrate`")
            frames = data["frames"]
            holdout = data["holdout_frames"]
            labels = data["holdout_labels"] if "holdout_labels" in data.files else None
            recipe = CalibrationRecipe.from_json(meta["recipe"])
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - damaged bytes raise BadZipFile, zlib.error, EOFError, TokenError
        # from the .npy header parse, ... (found by tests/reliability): every one of them is a bad file
        raise DataError(f"{path}: not a segnet-edge calibration set ({type(exc).__name__}); "
                        "build one with `segnet-edge calibrate`") from None
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise DataError(f"{path}: frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}; rebuild it")
    return CalibrationSet(recipe, frames, list(meta["names"]), holdout, list(meta["holdout_names"]), labels,
                          list(meta.get("skipped", [])), str(meta.get("created", "")))


def load_or_build(path: str | Path, recipe: CalibrationRecipe, allow_fewer: bool = False,
                  force: bool = False, save_to: str | Path | None = None) -> tuple[CalibrationSet, bool]:
    """The set stored at `path` when it was made by the same recipe, else a new one saved there
    (or at `save_to`: `convert` stages it with the artifacts and publishes them together).

    Returns (set, reused). Reading frames again is the slow part (a video is decoded
    twice), so a matching file is trusted; `force` rebuilds anyway.
    """
    path = Path(path)
    resolved = recipe.resolved()
    if path.is_file() and not force:
        try:
            stored = load_calibration_set(path)
        except DataError:
            stored = None
        if stored is not None and stored.recipe == resolved:
            return stored, True
    calib = build_calibration_set(resolved, allow_fewer=allow_fewer)
    calib.save(path if save_to is None else save_to)
    return calib, False


# --- building ----------------------------------------------------------------------------------


def detect_kind(source: Path, split: str = "train") -> str:
    """dataset (a layout find_samples reads, or a list file), folder (images), or video."""
    from segnet_edge.data.layout import IMAGE_SUFFIXES, find_samples

    if source.is_file():
        if source.suffix.lower() in VIDEO_SUFFIXES:
            return "video"
        if source.suffix.lower() == ".txt":
            return "dataset"
        if source.suffix.lower() in IMAGE_SUFFIXES:
            raise DataError(f"{source}: one image is not a calibration set; give its folder instead")
        return "video"  # let OpenCV try; it reports an unreadable file clearly
    try:
        find_samples(source, split)
        return "dataset"
    except DataError as exc:
        if _images_in(source):
            return "folder"
        raise DataError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) and no dataset split {split!r} "
                        f"({str(exc).split(': ', 1)[-1]}); give a folder with images, a dataset or a video") from None


def source_frame_size(source: str | Path, kind: str = "auto", split: str = "train") -> tuple[int, int]:
    """(height, width) of the first frame of a dataset, image folder or video: the calibration size when
    neither --size nor a model gives one."""
    import cv2

    source = Path(source).expanduser()
    if not source.exists():
        raise DataError(f"{source}: no such file or folder; give a dataset, an image folder or a video file")
    kind = detect_kind(source, split) if kind == "auto" else kind
    if kind == "video":
        capture = cv2.VideoCapture(str(source))
        ok, frame = capture.read()
        capture.release()
        if not ok or frame is None:
            raise DataError(f"{source}: OpenCV cannot read this video; check the file or convert it to .mp4/.avi")
    else:
        from segnet_edge.data.layout import find_samples

        first = _images_in(source)[0] if kind == "folder" else find_samples(source, split)[0].image
        frame = _read_image(first)
    return int(frame.shape[0]), int(frame.shape[1])


def _images_in(folder: Path) -> list[Path]:
    from segnet_edge.data.layout import IMAGE_SUFFIXES

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _check_any(available: int, source: str) -> None:
    if available == 0:
        raise DataError(f"{source}: no images found; give a folder with images, a dataset or a video")


def _choose(available: int, count: int, holdout: int, seed: int, allow_fewer: bool,
            source: str) -> tuple[list[int], list[int]]:
    """Deterministic, disjoint, sorted indices of calibration and held-out items."""
    _check_any(available, source)
    if available < count and not allow_fewer:
        raise DataError(f"{source}: only {available} images, fewer than the {count} asked for; "
                        f"lower --count to {available} or add images")
    order = np.random.default_rng(seed).permutation(available)
    count = min(count, available)
    chosen = sorted(int(i) for i in order[:count])
    held = sorted(int(i) for i in order[count:count + holdout])
    return chosen, held


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: unreadable image; replace or remove the file, or use --on-bad-sample skip")
    return image


def _pick_readable(available: int, recipe: CalibrationRecipe, allow_fewer: bool, source: str,
                   read: Callable[[int, bool], T]) -> tuple[list[tuple[int, T]], list[tuple[int, T]], list[str]]:
    """(calibration items, held-out items, skipped) as (index, read(index, held_out)) sorted by index.

    "fail": `_choose`'s picks, the first bad one raises. "skip": the seeded order is walked and a bad
    item (its read raises DataError) gives its place to the next, so a set without bad files is
    exactly the one "fail" builds."""
    if recipe.on_bad_sample == "fail":
        chosen, held = _choose(available, recipe.count, recipe.holdout, recipe.seed, allow_fewer, source)
        return [(i, read(i, False)) for i in chosen], [(i, read(i, True)) for i in held], []
    _check_any(available, source)
    good: list[tuple[int, T]] = []
    held: list[tuple[int, T]] = []
    skipped: list[str] = []
    for index in np.random.default_rng(recipe.seed).permutation(available):
        if len(good) >= recipe.count and len(held) >= recipe.holdout:
            break
        held_out = len(good) >= recipe.count
        try:
            item = read(int(index), held_out)
        except DataError as exc:
            skipped.append(str(exc).split("; ")[0])
            continue
        (held if held_out else good).append((int(index), item))
    if not good:
        raise DataError(f"{source}: none of the {available} images is readable ({skipped[0]}); check the files")
    if len(good) < recipe.count and not allow_fewer:
        raise DataError(f"{source}: only {len(good)} readable images ({len(skipped)} skipped), fewer than the "
                        f"{recipe.count} asked for; lower --count to {len(good)} or add images")
    return sorted(good, key=lambda pair: pair[0]), sorted(held, key=lambda pair: pair[0]), skipped


def build_calibration_set(recipe: CalibrationRecipe, allow_fewer: bool = False) -> CalibrationSet:
    """Choose, read and resize the frames `recipe` describes."""
    recipe = recipe.resolved()
    source = Path(recipe.source)
    if recipe.kind == "video":
        return _from_video(recipe, source, allow_fewer)
    if recipe.kind == "folder":
        if not source.is_dir():
            raise DataError(f"{source}: not a folder of images")
        images = _images_in(source)
        chosen, held, skipped = _pick_readable(len(images), recipe, allow_fewer, str(source),
                                               lambda i, _: resize_frame(_read_image(images[i]), recipe.size))
        return CalibrationSet(recipe, _stack([f for _, f in chosen], recipe.size), [images[i].name for i, _ in chosen],
                              _stack([f for _, f in held], recipe.size), [images[i].name for i, _ in held],
                              skipped=skipped)
    return _from_dataset(recipe, source, allow_fewer)


def _from_dataset(recipe: CalibrationRecipe, source: Path, allow_fewer: bool) -> CalibrationSet:
    from segnet_edge.data.layout import find_samples, load_class_info
    from segnet_edge.data.loader import check_labels, read_labels

    samples = find_samples(source, recipe.split)
    info = None
    if recipe.holdout and any(s.label is not None for s in samples):
        try:
            info = load_class_info(source)
        except DataError:
            info = None  # labels whose classes nobody names cannot be scored; keep the frames only

    def read(i: int, held_out: bool) -> tuple[np.ndarray, np.ndarray | None]:
        frame = resize_frame(_read_image(samples[i].image), recipe.size)
        label = None
        if held_out and info is not None and samples[i].label is not None:
            raw = read_labels(samples[i].label)
            check_labels(raw, samples[i].label, info)
            label = resize_labels(raw.astype(np.uint8), recipe.size)
        return frame, label

    chosen, held, skipped = _pick_readable(len(samples), recipe, allow_fewer, f"{source} ({recipe.split} split)", read)
    labels = None
    if held and all(label is not None for _, (_, label) in held):
        labels = np.stack([label for _, (_, label) in held])
    return CalibrationSet(recipe, _stack([f for _, (f, _) in chosen], recipe.size),
                          [samples[i].image.name for i, _ in chosen],
                          _stack([f for _, (f, _) in held], recipe.size), [samples[i].image.name for i, _ in held],
                          labels, skipped)


def _from_video(recipe: CalibrationRecipe, source: Path, allow_fewer: bool) -> CalibrationSet:
    """Count the frames once (containers often misreport CAP_PROP_FRAME_COUNT), then read the chosen ones."""
    import cv2

    def open_video():
        capture = cv2.VideoCapture(str(source))
        if not capture.isOpened():
            raise DataError(f"{source}: OpenCV cannot read this video; check the file or convert it to .mp4/.avi")
        return capture

    capture = open_video()
    total = 0
    while capture.grab():
        total += 1
    capture.release()
    chosen, held = _choose(total, recipe.count, recipe.holdout, recipe.seed, allow_fewer, str(source))
    wanted = set(chosen) | set(held)
    frames: dict[int, np.ndarray] = {}
    capture = open_video()
    index = 0
    last = max(wanted)
    while index <= last:
        if not capture.grab():
            break
        if index in wanted:
            ok, frame = capture.retrieve()
            if not ok or frame is None:
                raise DataError(f"{source}: frame {index} cannot be decoded; re-encode the video")
            frames[index] = resize_frame(frame, recipe.size)
        index += 1
    capture.release()
    if len(frames) != len(wanted):
        raise DataError(f"{source}: the video ended at frame {index} on the second read; re-encode it")
    name = source.name
    return CalibrationSet(recipe, _stack([frames[i] for i in chosen], recipe.size), [f"{name}#{i}" for i in chosen],
                          _stack([frames[i] for i in held], recipe.size), [f"{name}#{i}" for i in held])


def _stack(frames: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    if not frames:
        return np.zeros((0, *size, 3), np.uint8)
    return np.ascontiguousarray(np.stack(frames), dtype=np.uint8)
