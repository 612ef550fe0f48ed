"""Device-side fixtures: real video files (helpers live in device_util.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from device_util import CAMVID_SAMPLE, moving_scene, write_video


@pytest.fixture(scope="session", params=("segnet", "segnet-basic"))
def artifacts(request, tmp_path_factory) -> Path:
    """The tiny artifacts (tests/conftest.py make_artifacts) of both architectures: every device test runs on
    SegNet and on SegNet-Basic, whose preprocessing carries the input LRN."""
    from tests.conftest import make_artifacts

    return make_artifacts(tmp_path_factory.mktemp(f"artifacts-{request.param}"), request.param)


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
