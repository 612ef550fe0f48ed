"""Find image/label pairs on disk, in the layouts users actually have.

1. The SegNet authors' CamVid layout: a folder with `train.txt` / `val.txt` /
   `test.txt`, each line `image label`. Their paths are absolute
   (`/SegNet/CamVid/train/x.png`); a path that does not exist resolves against
   the list file's own folder (`train/x.png` next to `train.txt`).
2. `images/` + `labels/` folders with matching file stems, optionally one pair
   per split (`train/images`, `train/labels`, ...), or at the top level for "all".
3. Any list file given directly (`path/to/list.txt`).

No TensorFlow here: calibration and the board read datasets too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from segnet_edge.device.errors import DataError
from segnet_edge.device.metadata import CAMVID_CLASSES, CAMVID_IGNORE_LABEL, CAMVID_PALETTE, default_palette

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val", "test")
CLASSES_FILE = "classes.json"


@dataclass(frozen=True)
class Sample:
    image: Path
    label: Path | None


@dataclass(frozen=True)
class ClassInfo:
    """Class names, RGB palette and the label value that means "void"."""

    names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    ignore_label: int | None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_json(self) -> dict:
        return {"class_names": list(self.names), "palette": [list(c) for c in self.palette],
                "ignore_label": self.ignore_label}


def resolve_listed_path(raw: str, list_dir: Path) -> Path | None:
    """A list file's path as written, else its trailing parts under the list file's folder.

    Suffixes of two or more parts are tried first (`train/x.png`), because an image
    and its label usually share a file name and differ only by folder.
    """
    path = Path(raw)
    if path.is_file():
        return path
    if not path.is_absolute() and (list_dir / path).is_file():
        return list_dir / path
    parts = [p for p in path.parts if p not in ("/", "\\", "")]
    for count in [*range(2, len(parts) + 1), 1]:
        if count > len(parts):
            continue
        candidate = list_dir.joinpath(*parts[-count:])
        if candidate.is_file():
            return candidate
    return None


def read_list_file(list_file: Path) -> list[Sample]:
    """Parse an `image [label]` list file, resolving each path; one-line error on the first bad line."""
    if not list_file.is_file():
        raise DataError(f"{list_file}: no such list file; check the dataset path or --split")
    samples = []
    lines = list_file.read_text(encoding="utf-8", errors="replace").splitlines()
    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) > 2:
            raise DataError(f"{list_file}:{number}: expected `image label`, got {len(fields)} fields")
        resolved = []
        for raw in fields:
            path = resolve_listed_path(raw, list_file.parent)
            if path is None:
                tail = Path(*Path(raw).parts[-2:])
                raise DataError(
                    f"{list_file}:{number}: {raw} does not exist, nor does {list_file.parent / tail}; "
                    "copy the files next to the list file or fix the path"
                )
            resolved.append(path)
        samples.append(Sample(resolved[0], resolved[1] if len(resolved) > 1 else None))
    if not samples:
        raise DataError(f"{list_file}: the list is empty; add `image label` lines")
    return samples


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def pair_folders(images_dir: Path, labels_dir: Path | None) -> list[Sample]:
    """Pair images with labels by file stem; every image needs its label."""
    images = _images_in(images_dir)
    if not images:
        raise DataError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)}) found; check the folder")
    if labels_dir is None:
        return [Sample(p, None) for p in images]
    labels = {p.stem: p for p in _images_in(labels_dir)}
    samples = []
    for image in images:
        label = labels.get(image.stem)
        if label is None:
            raise DataError(f"{image}: no label with the same name in {labels_dir}; add it or remove the image")
        samples.append(Sample(image, label))
    return samples


def find_samples(root: str | Path, split: str = "train") -> list[Sample]:
    """The samples of `split` in a dataset folder, or of a list file given directly."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such dataset; check the path (or create one with `segnet-edge synth`)")
    if root.is_file():
        return read_list_file(root)
    list_file = root / f"{split}.txt"
    if list_file.is_file():
        return read_list_file(list_file)
    for images_dir, labels_dir in (
        (root / split / "images", root / split / "labels"),
        (root / "images" / split, root / "labels" / split),
        (root / split, root / f"{split}annot"),
    ):
        if images_dir.is_dir():
            return pair_folders(images_dir, labels_dir if labels_dir.is_dir() else None)
    if (root / "images").is_dir():
        return pair_folders(root / "images", root / "labels" if (root / "labels").is_dir() else None)
    available = [s for s in SPLITS if (root / f"{s}.txt").is_file() or (root / s).is_dir()]
    hint = f"available splits: {', '.join(available)}" if available else "expected train.txt or images/ + labels/"
    raise DataError(f"{root}: no {split!r} split ({hint})")


def has_class_source(root: str | Path) -> bool:
    """Whether the dataset names its classes (classes.json, or the CamVid layout)."""
    root = Path(root)
    folder = root if root.is_dir() else root.parent
    return (folder / CLASSES_FILE).is_file() or _looks_like_camvid(root)


def load_class_info(root: str | Path | None, classes_file: str | Path | None = None,
                    ignore_label: int | None = None, num_classes: int | None = None) -> ClassInfo:
    """Classes from --classes, else the dataset's classes.json, else CamVid's for the CamVid layout.

    An explicit ignore_label overrides the file's. The CamVid table applies when the
    list files point into a CamVid folder, as the SegNet authors ship it.
    """
    info = None
    candidate = Path(classes_file) if classes_file else None
    if candidate is None and root is not None:
        root = Path(root)
        folder = root if root.is_dir() else root.parent
        if (folder / CLASSES_FILE).is_file():
            candidate = folder / CLASSES_FILE
    if candidate is not None:
        info = _read_classes_file(candidate)
    elif root is not None and _looks_like_camvid(Path(root)):
        info = ClassInfo(CAMVID_CLASSES, CAMVID_PALETTE, CAMVID_IGNORE_LABEL)
    elif num_classes is not None:
        info = ClassInfo(tuple(f"class_{i}" for i in range(num_classes)), default_palette(num_classes), 255)
    else:
        raise DataError(
            f"{root}: no {CLASSES_FILE}; give --classes FILE (JSON with class_names, palette, ignore_label)"
        )
    if ignore_label is not None:
        info = ClassInfo(info.names, info.palette, ignore_label)
    return info


def _looks_like_camvid(root: Path) -> bool:
    list_file = root if root.is_file() else root / "train.txt"
    if not list_file.is_file():
        return False
    head = list_file.read_text(encoding="utf-8", errors="replace")[:4096]
    return "CamVid" in head or "camvid" in head


def _read_classes_file(path: Path) -> ClassInfo:
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            names = tuple(str(n) for n in data["class_names"])
            palette = data.get("palette")
            ignore = data.get("ignore_label", 255)
        else:  # one class name per line, optionally followed by "r g b"
            names, colours = [], []
            for line in path.read_text(encoding="utf-8").splitlines():
                fields = line.split()
                if fields:
                    names.append(fields[0])
                    colours.append([int(v) for v in fields[1:4]] if len(fields) >= 4 else None)
            names = tuple(names)
            palette = colours if all(colours) else None
            ignore = 255
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: unreadable class file ({exc}); give JSON with class_names and palette") from None
    if len(names) < 2:
        raise DataError(f"{path}: needs at least 2 class names")
    palette = tuple(tuple(int(v) for v in c) for c in palette) if palette else default_palette(len(names))
    if len(palette) != len(names):
        raise DataError(f"{path}: {len(palette)} palette colours for {len(names)} classes; give one per class")
    return ClassInfo(names, palette, None if ignore is None else int(ignore))
