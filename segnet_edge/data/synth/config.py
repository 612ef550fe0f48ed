"""What a synthetic dataset is asked for, its class vocabulary and one random stream per scene."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segnet_edge.device.errors import UsageError

#: Bump when a change alters the output bytes for a given seed.
GENERATOR_VERSION = 1

CLASS_NAMES: tuple[str, ...] = ("sky", "building", "road", "pavement", "vegetation", "car", "person", "pole")
#: CamVid's RGB colours for the same classes (SegNet's palette).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (128, 128, 128), (128, 0, 0), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (64, 0, 128), (64, 64, 0), (192, 192, 128),
)  # fmt: skip
IGNORE_LABEL = 255
SKY, BUILDING, ROAD, PAVEMENT, VEGETATION, CAR, PERSON, POLE = range(len(CLASS_NAMES))
SPLITS: tuple[str, ...] = ("train", "val", "test")
MIN_SIZE = 32
CLASSES_FILE = "classes.json"
INFO_FILE = "synth.json"

_F32 = np.float32


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. `val_count` / `test_count` default to max(1, count // 4)."""

    count: int
    size: tuple[int, int] = (96, 128)
    seed: int = 0
    val_count: int | None = None
    test_count: int | None = None

    def __post_init__(self) -> None:
        if int(self.count) < 1:
            raise UsageError(f"--count must be at least 1 (got {self.count})")
        if len(self.size) != 2 or min(int(v) for v in self.size) < MIN_SIZE:
            raise UsageError(f"--size must be at least {MIN_SIZE}x{MIN_SIZE} (got {_size_text(self.size)})")
        if not 0 <= int(self.seed) < 2**63:
            raise UsageError(f"--seed must be an integer in [0, 2**63) (got {self.seed})")
        for name in ("val_count", "test_count"):
            value = getattr(self, name)
            if value is not None and int(value) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more (got {value})")

    def split_counts(self) -> dict[str, int]:
        default = max(1, self.count // 4)
        return {
            "train": int(self.count),
            "val": default if self.val_count is None else int(self.val_count),
            "test": default if self.test_count is None else int(self.test_count),
        }


@dataclass(frozen=True)
class SynthSummary:
    """What was written; `class_pixels` (train split) feeds median-frequency class weights."""

    out: Path
    counts: dict[str, int]
    size: tuple[int, int]
    seed: int
    class_pixels: tuple[int, ...]
    seconds: float


def _size_text(size) -> str:
    try:
        return "x".join(str(int(v)) for v in size)
    except (TypeError, ValueError):
        return repr(size)


def scene_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """One independent stream per scene, so a split's count never changes another split's scenes."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLITS.index(split), int(index)]))
