"""Writing a dataset folder atomically in the CamVid layout, with its classes.json and synth.json."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from segnet_edge.data.synth.config import (
    CLASS_NAMES,
    CLASSES_FILE,
    GENERATOR_VERSION,
    IGNORE_LABEL,
    INFO_FILE,
    PALETTE,
    SynthConfig,
    SynthSummary,
    scene_rng,
)
from segnet_edge.data.synth.scene import render_scene
from segnet_edge.device.errors import UsageError


def classes_json() -> dict:
    return {"class_names": list(CLASS_NAMES), "palette": [list(c) for c in PALETTE], "ignore_label": IGNORE_LABEL}


def _check_target(out: Path, overwrite: bool) -> None:
    if out.is_file() or (out.exists() and not out.is_dir()):
        raise UsageError(f"{out} is a file; give a folder path for the dataset")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(f"{out} exists and is not empty; pass --overwrite to replace it or pick another folder")
        if not ((out / CLASSES_FILE).is_file() or (out / "train.txt").is_file()):
            raise UsageError(f"{out} does not look like a dataset (no {CLASSES_FILE} or train.txt); "
                             "refusing to delete it, pick another folder")


def write_synth_dataset(out: str | os.PathLike, config: SynthConfig, overwrite: bool = False,
                        progress: bool | None = None) -> SynthSummary:
    """Write the dataset into a temporary sibling folder, then rename it to `out` in one step.

    `progress=None` shows a tqdm bar only on a terminal.
    """
    from tqdm import tqdm

    out = Path(out)
    _check_target(out, overwrite)
    if out.resolve() in (Path.cwd().resolve(), *Path.cwd().resolve().parents):
        raise UsageError(f"{out} is the current folder or one above it; pick a new folder for the dataset")
    counts = config.split_counts()
    h, w = int(config.size[0]), int(config.size[1])
    digits = max(5, len(str(max(counts.values()) - 1)))
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    tmp = _fresh_sibling(out, "tmp")
    class_pixels = np.zeros(len(CLASS_NAMES), np.int64)
    try:
        disable = None if progress is None else not progress
        with tqdm(total=sum(counts.values()), desc="synth", unit="scene", disable=disable) as bar:
            for split, n in counts.items():
                if n == 0:
                    continue
                (tmp / split).mkdir()
                (tmp / f"{split}annot").mkdir()
                lines = []
                for index in range(n):
                    image, labels = render_scene(scene_rng(config.seed, split, index), (h, w))
                    name = f"synth_{index:0{digits}d}.png"
                    _imwrite(tmp / split / name, image)
                    _imwrite(tmp / f"{split}annot" / name, labels)
                    if split == "train":
                        class_pixels += np.bincount(labels.ravel(), minlength=256)[: len(CLASS_NAMES)]
                    lines.append(f"{split}/{name} {split}annot/{name}\n")
                    bar.update(1)
                (tmp / f"{split}.txt").write_text("".join(lines), encoding="utf-8")
        (tmp / CLASSES_FILE).write_text(json.dumps(classes_json(), indent=2) + "\n", encoding="utf-8")
        info = {"generator": "segnet_edge.data.synth", "generator_version": GENERATOR_VERSION, "seed": int(config.seed),
                "size": [h, w], "counts": counts, "train_class_pixels": [int(v) for v in class_pixels]}
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return SynthSummary(out=out, counts=counts, size=(h, w), seed=int(config.seed),
                        class_pixels=tuple(int(v) for v in class_pixels), seconds=time.perf_counter() - started)


def _imwrite(path: Path, array: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", array, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    path.write_bytes(buf.tobytes())


def _fresh_sibling(out: Path, tag: str) -> Path:
    """A new hidden folder beside `out` (same filesystem, so renames are atomic), made with the umask."""
    for _ in range(100):
        candidate = out.parent / f".{out.name}.{os.getpid()}.{secrets.token_hex(4)}.{tag}"
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise OSError(f"{out.parent}: could not create a temporary folder")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move `tmp` to `out`; an existing (already vetted) `out` is moved aside first and removed after."""
    if not out.exists():
        os.replace(tmp, out)
        return
    old = _fresh_sibling(out, "old")
    old.rmdir()
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
