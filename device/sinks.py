"""Where annotated frames go: a window, a video file, per-frame mask PNGs, JSON lines.

Files appear atomically: the video and the JSON lines are written under a
temporary name and renamed when the run ends; each mask is renamed into place.
"""

from __future__ import annotations

import abc
import contextlib
import json
import os
import sys
from pathlib import Path

import numpy as np

from segnet_edge.device.atomic import atomic_path, write_bytes_atomic, write_error
from segnet_edge.device.errors import UsageError
from segnet_edge.device.postprocess import Segmentation

#: Video container suffix -> FourCC that OpenCV's FFmpeg backend writes everywhere.
VIDEO_CODECS = {".avi": "MJPG", ".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "MJPG"}


class Sink(abc.ABC):
    @abc.abstractmethod
    def write(self, index: int, annotated: np.ndarray, seg: Segmentation, line: dict) -> bool:
        """Take one frame; False asks the run to stop (a window was closed)."""

    def close(self, ok: bool = True) -> None:
        """Finish (ok) or discard (not ok) what was written."""
        return None


class _AtomicFile:
    """A temporary file renamed over the target on commit and removed on abort."""

    def __init__(self, target: Path):
        self._stack = contextlib.ExitStack()
        self.tmp: Path = self._stack.enter_context(atomic_path(target))

    def finish(self, ok: bool) -> None:
        if ok:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


class VideoSink(Sink):
    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_CODECS:
            raise UsageError(f"--save-video {self.path}: use one of {', '.join(VIDEO_CODECS)}")
        self.fourcc = VIDEO_CODECS[suffix]
        self.fps = fps if fps and fps > 0 else 30.0
        self._writer = None
        self._file: _AtomicFile | None = None
        self.frames = 0

    def _open(self, frame: np.ndarray) -> None:
        import cv2

        self._file = _AtomicFile(self.path)
        height, width = frame.shape[:2]
        self._writer = cv2.VideoWriter(str(self._file.tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps,
                                       (width, height))
        if not self._writer.isOpened():
            self._file.finish(False)
            raise UsageError(f"--save-video {self.path}: OpenCV cannot write {self.fourcc} video here; "
                             "try a .avi file")

    def write(self, index: int, annotated: np.ndarray, seg: Segmentation, line: dict) -> bool:
        if self._writer is None:
            self._open(annotated)
        self._writer.write(annotated)
        self.frames += 1
        return True

    def close(self, ok: bool = True) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            self._file.finish(ok and self.frames > 0)


class MaskSink(Sink):
    """One 8-bit PNG per frame, pixel value = class index, at the frame's resolution."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def write(self, index: int, annotated: np.ndarray, seg: Segmentation, line: dict) -> bool:
        import cv2

        name = f"{index:06d}.png"
        ok, data = cv2.imencode(".png", seg.frame_labels)
        if not ok:
            raise UsageError(f"cannot encode mask {name}")
        write_bytes_atomic(self.folder / name, data.tobytes())
        line["mask"] = name
        return True


class JsonLinesSink(Sink):
    """One JSON object per frame; `-` streams to stdout for a consumer process."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.to_stdout = str(path) == "-"
        if self.to_stdout:
            self._stream = sys.stdout
            self._file = None
        else:
            self._file = _AtomicFile(self.path)
            self._stream = open(self._file.tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, index: int, annotated: np.ndarray, seg: Segmentation, line: dict) -> bool:
        try:
            self._stream.write(json.dumps(line, separators=(",", ":")) + "\n")
            if self.to_stdout:
                self._stream.flush()
        except OSError as exc:  # a full disk: one line naming the file, not a bare errno
            raise write_error(self.path, exc) from None
        return True

    def close(self, ok: bool = True) -> None:
        """Flush and commit (ok) or discard; a flush that fails discards the temporary and says so once."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            self._stream.close()
        except OSError as exc:
            file.finish(False)
            if ok:
                raise write_error(self.path, exc) from None
            return
        file.finish(ok)


class DisplaySink(Sink):
    """An OpenCV window; q or Esc ends the run (which still writes its report)."""

    WINDOW = "segnet-edge"

    def __init__(self):
        import cv2

        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise UsageError("--display needs a desktop session (DISPLAY is not set); use --save-video instead")
        try:
            cv2.namedWindow(self.WINDOW, cv2.WINDOW_NORMAL)
        except cv2.error:
            raise UsageError(f"--display needs an OpenCV with GUI support; the loaded cv2 {cv2.__version__} is "
                             "headless (opencv-python-headless); use --save-video or install opencv-python") from None

    def write(self, index: int, annotated: np.ndarray, seg: Segmentation, line: dict) -> bool:
        import cv2

        cv2.imshow(self.WINDOW, annotated)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self, ok: bool = True) -> None:
        import cv2

        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.WINDOW)
