"""Session fixtures for the convert tests: a small SegNet fitted for ~20 s, its calibration set, one conversion.

Why fitted: an untrained network's class probabilities are nearly uniform, so any
rounding flips its argmax and int8 agreement would measure noise. The scenes are
simple on purpose (sky above a horizon, road below, boxes standing on it, patches
on the road, with noise and a global brightness shift) so that a 32x48 SegNet with
alpha 0.25 becomes confident within seconds, as a trained model is.

The conversion runs once, through the CLI, as a user runs it; the tests read its
artifacts and report.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from segnet_edge.vocabulary import ARCHITECTURES
from tests.conftest import run_cli

INPUT_SIZE = (32, 48)
CLASSES = ("sky", "road", "car", "building")
PALETTE = ((128, 128, 128), (128, 64, 128), (64, 0, 128), (128, 0, 0))
ALPHA = 0.25
TRAIN_FRAMES, VAL_FRAMES = 128, 24
COLOURS = np.array([[200, 160, 110], [90, 90, 90], [40, 40, 200], [40, 150, 50]], np.float32)  # BGR


def scenes(count: int, seed: int, size: tuple[int, int] = INPUT_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """uint8 BGR frames (N, H, W, 3) and uint8 labels (N, H, W)."""
    rng = np.random.default_rng(seed)
    height, width = size
    frames = np.empty((count, height, width, 3), np.uint8)
    labels = np.empty((count, height, width), np.uint8)
    for i in range(count):
        label = np.zeros((height, width), np.uint8)
        horizon = int(height * rng.uniform(0.35, 0.55))
        label[horizon:] = 1
        for _ in range(rng.integers(1, 3)):
            box_w, box_h = rng.integers(width // 5, width // 2), rng.integers(height // 5, height // 2)
            x0 = rng.integers(0, width - box_w)
            label[max(0, horizon - box_h):horizon, x0:x0 + box_w] = 3
        for _ in range(rng.integers(1, 3)):
            car_w, car_h = rng.integers(width // 5, width // 3), rng.integers(height // 6, height // 4)
            x0, y0 = rng.integers(0, width - car_w), rng.integers(horizon, height - car_h)
            label[y0:y0 + car_h, x0:x0 + car_w] = 2
        image = COLOURS[label] + rng.normal(0, 12, (height, width, 3)) + rng.uniform(-25, 25)
        frames[i] = np.clip(image, 0, 255).astype(np.uint8)
        labels[i] = label
    return frames, labels


def write_dataset(root: Path, splits: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    """`root/<split>/images|labels/*.png` plus classes.json: a layout segnet_edge.data reads."""
    for split, (frames, labels) in splits.items():
        (root / split / "images").mkdir(parents=True, exist_ok=True)
        (root / split / "labels").mkdir(parents=True, exist_ok=True)
        for i, (frame, label) in enumerate(zip(frames, labels)):
            cv2.imwrite(str(root / split / "images" / f"{i:04d}.png"), frame)
            cv2.imwrite(str(root / split / "labels" / f"{i:04d}.png"), label)
    (root / "classes.json").write_text(json.dumps({"class_names": list(CLASSES), "palette": [list(c) for c in PALETTE],
                                                   "ignore_label": 255}))
    return root


@pytest.fixture(scope="session")
def scene_dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scenes")
    return write_dataset(root, {"train": scenes(TRAIN_FRAMES, seed=1), "val": scenes(VAL_FRAMES, seed=2)})


def model_metadata(**changes):
    from segnet_edge.device.metadata import ModelMetadata

    fields = dict(class_names=CLASSES, palette=PALETTE, input_size=INPUT_SIZE, arch="segnet", alpha=ALPHA,
                  ignore_label=255)
    return ModelMetadata(**{**fields, **changes})


@dataclass(frozen=True)
class ArchFacts:
    """What the tests expect of each architecture's graph."""

    pooling_levels: int
    relu_convs: int  # conv+BN+ReLU outputs (activation equalization rescales each)
    first_conv: str


ARCH_FACTS = {"segnet": ArchFacts(5, 25, "block1_conv1"), "segnet-basic": ArchFacts(4, 4, "conv1")}


def facts(model_path: Path) -> ArchFacts:
    from segnet_edge.model_io import read_metadata

    return ARCH_FACTS[read_metadata(model_path).arch]


#: Every convert test that takes the fitted model runs on every architecture, so none can regress silently.
@pytest.fixture(scope="session", params=ARCHITECTURES)
def trained_model(request, tmp_path_factory, scene_dataset) -> Path:
    """SegNet or SegNet-Basic 32x48, alpha 0.25, 4 classes, fitted on 128 scenes for 10 epochs (~20 s on 2 cores,
    val mIoU ~94%).

    Batch-norm momentum 0.9 instead of 0.99: with 160 steps the moving statistics would
    otherwise still lag the weights, and inference-mode outputs would be unsure.
    """
    from segnet_edge._tf import keras
    from segnet_edge.device.preprocess import normalize
    from segnet_edge.model_io import save_model
    from segnet_edge.models import ModelConfig, build_model

    arch = request.param
    keras.utils.set_random_seed(0)
    metadata = model_metadata(arch=arch)
    model = build_model(ModelConfig(arch=arch, input_size=INPUT_SIZE, num_classes=len(CLASSES), alpha=ALPHA))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    frames, labels = scenes(TRAIN_FRAMES, seed=1)
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy")
    model.fit(normalize(frames, metadata.normalization), labels, batch_size=8, epochs=10, verbose=0)
    path = tmp_path_factory.mktemp("model") / f"{arch.replace('-', '_')}_tiny.h5"
    save_model(model, path, metadata)
    return path


@pytest.fixture(scope="session")
def calib_npz(tmp_path_factory, scene_dataset) -> Path:
    from segnet_edge.calibration import CalibrationRecipe, build_calibration_set

    recipe = CalibrationRecipe(source=str(scene_dataset), size=INPUT_SIZE, count=32, holdout=8, split="train")
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    build_calibration_set(recipe).save(path)
    return path


@dataclass
class Conversion:
    out: Path
    returncode: int
    stdout: str
    stderr: str
    report: dict

    def artifact(self, name: str) -> dict:
        return next(a for a in self.report["artifacts"] if a["format"] == name)


@pytest.fixture(scope="session")
def converted(tmp_path_factory, trained_model, calib_npz, scene_dataset) -> Conversion:
    """`segnet-edge convert MODEL --calib calib.npz --eval-data DATASET`: every format, once."""
    out = tmp_path_factory.mktemp("converted") / "export"
    result = run_cli("convert", trained_model, "--calib", calib_npz, "--eval-data", scene_dataset,
                     "--parity-frames", VAL_FRAMES, "--out", out)
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    return Conversion(out, result.returncode, result.stdout, result.stderr, report)
