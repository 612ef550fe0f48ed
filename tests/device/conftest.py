"""Device-side fixtures: real tiny artifacts and real video files (helpers live in device_util.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from device_util import CAMVID_SAMPLE, moving_scene, write_video


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """model_fp32.tflite, model_int8.tflite, model.onnx (+ no_metadata.tflite) from a tiny random SegNet."""
    out = tmp_path_factory.mktemp("artifacts")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(Path(__file__).with_name("make_artifacts.py")), str(out)],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.fixture(scope="session")
def scene_video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "scene.avi", moving_scene(18))


@pytest.fixture(scope="session")
def camvid_video(tmp_path_factory) -> tuple[Path, int]:
    """The real CamVid sample frames (val, then train, each in name order) as one video."""
    import cv2

    files = sorted((CAMVID_SAMPLE / "val").glob("*.png")) + sorted((CAMVID_SAMPLE / "train").glob("*.png"))
    if not files:
        pytest.fail(f"the real CamVid sample is missing at {CAMVID_SAMPLE}; it ships in ../shared")
    frames = [cv2.imread(str(f)) for f in files]
    return write_video(tmp_path_factory.mktemp("camvid") / "camvid.avi", frames, fps=5.0), len(frames)
