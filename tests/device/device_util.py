"""Helpers for the device tests: run the script without TensorFlow, write and read real videos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.conftest import assert_usage_error as assert_one_line_error  # noqa: F401 - re-exported

REPO = Path(__file__).resolve().parents[2]
CAMVID_SAMPLE = REPO.parent / "shared" / "data" / "camvid-sample"
RUN_CAMERA = REPO / "device" / "run_camera.py"
CLI = [sys.executable, "-m", "segnet_edge.cli"]

#: Runs a script with TensorFlow / Keras unimportable and, with --no-install, without the installed
#: package either (as on a board where the checkout is copied over). Blocked attempts are reported.
NO_TF_WRAPPER = r"""
import atexit, runpy, sys
BLOCKED = ("tensorflow", "tf_keras", "keras")
attempts = []
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            attempts.append(name)
            raise ImportError(f"{name} is blocked: the device side must run without TensorFlow")
        return None
sys.meta_path.insert(0, _Blocker())
args = sys.argv[1:]
if args[0] == "--no-install":
    args = args[1:]
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__module__", "")
                        and "editable" not in getattr(type(f), "__module__", "")]
    for name in [m for m in sys.modules if m == "segnet_edge" or m.startswith("segnet_edge.")]:
        del sys.modules[name]
atexit.register(lambda: attempts and print("BLOCKED IMPORTS:", attempts, file=sys.stderr))
if args[0] == "-m":
    sys.argv = args[1:]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)
else:
    sys.argv = args
    runpy.run_path(args[0], run_name="__main__")
"""


def run_no_tf(*args: str, no_install: bool = False, timeout: float = 120, cwd: Path = REPO,
              **popen) -> subprocess.CompletedProcess:
    """`python device/run_camera.py ARGS` in a fresh process where TensorFlow cannot be imported."""
    command = [sys.executable, "-c", NO_TF_WRAPPER, *(["--no-install"] if no_install else []),
               str(RUN_CAMERA), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=cwd, **popen)


def no_tf_command(*args: str) -> list[str]:
    """The run_camera.py command line, TensorFlow blocked (for Popen)."""
    return [sys.executable, "-c", NO_TF_WRAPPER, str(RUN_CAMERA), *map(str, args)]


def profile_no_tf(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """`segnet-edge profile ARGS` in a fresh process where TensorFlow cannot be imported."""
    command = [sys.executable, "-c", NO_TF_WRAPPER, "-m", "segnet_edge.cli", "profile", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    """A real video file written by OpenCV (MJPG in AVI: readable wherever OpenCV has FFmpeg)."""
    import cv2

    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def read_video(path: Path) -> list[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"cannot read {path}"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def moving_scene(count: int, size: tuple[int, int] = (96, 128)) -> list[np.ndarray]:
    """Frames with a bright square moving over a two-tone background."""
    height, width = size
    frames = []
    for i in range(count):
        frame = np.zeros((height, width, 3), np.uint8)
        frame[: height // 2] = (180, 120, 60)
        frame[height // 2 :] = (60, 60, 60)
        x = (i * 7) % (width - 24)
        frame[30:54, x : x + 24] = (20, 220, 240)
        frames.append(frame)
    return frames


