"""The real CamVid sample as the three calibration sources: a dataset, an image folder, a video."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

SIZE = (36, 48)  # a tenth of CamVid's 360x480, so tests stay fast


def camvid_frames(root: Path) -> list[Path]:
    """All 16 frames in sequence order (train then val), as the list files name them."""
    from segnet_edge.data.layout import find_samples

    return [s.image for split in ("train", "val") for s in find_samples(root, split)]


@pytest.fixture(scope="session")
def camvid_video(tmp_path_factory, camvid_sample) -> Path:
    """The 16 CamVid frames written in order as an MJPG .avi with OpenCV, 480x360."""
    path = tmp_path_factory.mktemp("video") / "camvid.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (480, 360))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for frame_path in camvid_frames(camvid_sample):
        writer.write(cv2.imread(str(frame_path)))
    writer.release()
    return path
