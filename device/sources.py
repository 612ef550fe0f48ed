"""Where frames come from: camera index, /dev/videoN, csi://N, rtsp:// and http:// URLs, video file,
image folder, or `synthetic`.

Every source yields BGR uint8 frames and says whether it is live (a camera or a
stream: the pipeline keeps only the latest frames and reconnects when it drops)
or finite (a file: no frame is dropped). Descriptions never contain credentials.
"""

from __future__ import annotations

import abc
import enum
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segnet_edge.device.errors import DataError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://")
_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s]+@")


def redact(text: str) -> str:
    """Hide user:password in every URL of `text`: rtsp://user:pass@host -> rtsp://***@host."""
    return _CREDENTIALS.sub(r"\1***@", str(text))


class ReadStatus(enum.Enum):
    OK = "ok"
    SKIP = "skip"  # this frame is unreadable; the next one may be fine
    END = "end"  # a finite source has no more frames
    LOST = "lost"  # a live source stopped answering; reopening may help


@dataclass(frozen=True)
class CaptureSettings:
    """Requested capture format for cameras and the synthetic source (None: the device default)."""

    width: int | None = None
    height: int | None = None
    fps: float | None = None
    #: A network stream that sends nothing for this long (opening or mid-stream) counts as lost, and
    #: is reconnected with backoff; FFmpeg's own default would block for 30 s per attempt.
    timeout_s: float = 10.0

    def to_json(self) -> dict:
        return {"width": self.width, "height": self.height, "fps": self.fps, "timeout_s": self.timeout_s}


class FrameSource(abc.ABC):
    """A stream of BGR frames. `open()` fails with one line; `read()` never raises for bad frames."""

    live: bool = False
    description: str = ""

    @abc.abstractmethod
    def open(self) -> None: ...

    @abc.abstractmethod
    def read(self) -> tuple[ReadStatus, np.ndarray | None]: ...

    def close(self) -> None:
        """Release the device or file."""
        return None

    def reopen(self) -> bool:
        """Try once to reconnect a live source; True when it answers again."""
        self.close()
        try:
            self.open()
        except DataError:
            return False
        return True

    def fresh(self) -> FrameSource | None:
        """An unopened twin on the same device or URL, for when this one is stuck inside a read that
        will not return (it cannot be closed or reopened under that read); None: cannot be renewed."""
        return None

    @property
    def fps(self) -> float | None:
        """Nominal frame rate, when the source knows it (used for saved video)."""
        return None


def _valid(frame) -> bool:
    return isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.size > 0


class VideoCaptureSource(FrameSource):
    """Anything cv2.VideoCapture opens: cameras, GStreamer pipelines, URLs, video files."""

    def __init__(self, target: int | str, api: int, live: bool, description: str,
                 settings: CaptureSettings = CaptureSettings(), missing_hint: str = ""):
        self.target, self.api, self.live = target, api, live
        self.description = redact(description)
        self.settings = settings
        self.missing_hint = missing_hint
        self._capture = None
        self._lock = threading.Lock()  # release() while another thread is in grab() can crash OpenCV

    def open(self) -> None:
        import cv2

        params = self._open_params(cv2)
        # The three-argument form exists from OpenCV 4.5.2; JetPack 4's 4.1 has only the two-argument one.
        capture = cv2.VideoCapture(self.target, self.api, params) if params else cv2.VideoCapture(self.target, self.api)
        if not capture.isOpened():
            capture.release()
            raise DataError(f"cannot open {self.description}{self.missing_hint}")
        if self.live and self.api != cv2.CAP_GSTREAMER:
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, self.settings.width),
                                (cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height),
                                (cv2.CAP_PROP_FPS, self.settings.fps)):
                if value:
                    capture.set(prop, float(value))
        self._capture = capture

    def _open_params(self, cv2) -> list[int]:
        """Open and read timeouts for network streams (OpenCV 4.6+ with FFmpeg; older builds block longer)."""
        if self.api != cv2.CAP_FFMPEG or not self.live or not self.settings.timeout_s:
            return []
        milliseconds = max(1, int(self.settings.timeout_s * 1000))
        params: list[int] = []
        for name in ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC"):
            if hasattr(cv2, name):
                params += [getattr(cv2, name), milliseconds]
        return params

    def fresh(self) -> VideoCaptureSource:
        return VideoCaptureSource(self.target, self.api, self.live, self.description, self.settings,
                                  self.missing_hint)

    def read(self) -> tuple[ReadStatus, np.ndarray | None]:
        with self._lock:
            capture = self._capture
            if capture is None or not capture.grab():
                return ReadStatus.LOST if self.live else ReadStatus.END, None
            ok, frame = capture.retrieve()
        if not ok or not _valid(frame):
            return ReadStatus.SKIP, None
        return ReadStatus.OK, frame

    def close(self) -> None:
        """Release the capture; a read stuck on a dead network stream is left to the process exit
        rather than released under it."""
        if not self._lock.acquire(timeout=5):
            return
        try:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
        finally:
            self._lock.release()

    @property
    def fps(self) -> float | None:
        import cv2

        if self._capture is None:
            return None
        value = self._capture.get(cv2.CAP_PROP_FPS)
        return float(value) if value and 0 < value < 1000 else None


class FolderSource(FrameSource):
    """The images of a folder in name order; unreadable files are skipped and counted."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.description = f"image folder {folder}"
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise DataError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        self._next = 0

    def read(self) -> tuple[ReadStatus, np.ndarray | None]:
        import cv2

        if self._next >= len(self._files):
            return ReadStatus.END, None
        path = self._files[self._next]
        self._next += 1
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return (ReadStatus.OK, frame) if _valid(frame) else (ReadStatus.SKIP, None)


class SyntheticSource(FrameSource):
    """Generated street-like frames with moving shapes: profiling with no camera, no disk, no drops.

    A small ring of frames is made up front so generation costs nothing per frame,
    which keeps capture out of the way when inference is what is being measured. Four, not more: the
    ring is resident in the process whose memory `profile` reports (16 VGA frames were 15 MB of it).
    """

    RING = 4

    def __init__(self, settings: CaptureSettings = CaptureSettings(), seed: int = 0):
        self.width = settings.width or 640
        self.height = settings.height or 480
        self._fps = settings.fps
        self.seed = seed
        self.description = f"synthetic {self.width}x{self.height}"
        self._ring: list[np.ndarray] = []
        self._count = 0

    def open(self) -> None:
        if self.width < 8 or self.height < 8:
            raise UsageError(f"synthetic frames must be at least 8x8, got {self.width}x{self.height}")
        self._ring = [self._make(i) for i in range(self.RING)]
        self._count = 0

    def _make(self, i: int) -> np.ndarray:
        import cv2

        h, w = self.height, self.width
        rng = np.random.default_rng(self.seed + i)
        frame = np.empty((h, w, 3), np.uint8)
        frame[: h // 3] = (200, 160, 120)  # sky (BGR)
        frame[h // 3 : 2 * h // 3] = (90, 90, 110)  # buildings
        frame[2 * h // 3 :] = (80, 70, 70)  # road
        shift = int(i * w / self.RING)
        for k in range(3):
            x = (shift + k * w // 3) % w
            cv2.rectangle(frame, (x, h // 2), (min(w - 1, x + w // 8), h // 2 + h // 6), (40, 40, 200), -1)
        noise = rng.integers(0, 12, size=(h, w, 1), dtype=np.uint8)
        return cv2.add(frame, np.repeat(noise, 3, axis=2))

    def read(self) -> tuple[ReadStatus, np.ndarray | None]:
        frame = self._ring[self._count % self.RING]
        self._count += 1
        return ReadStatus.OK, frame.copy()

    @property
    def fps(self) -> float | None:
        return self._fps


# --- choosing a source from --source ---------------------------------------------------------


def opencv_has_gstreamer() -> bool:
    import cv2

    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return line.split(":", 1)[1].strip().upper().startswith("YES")
    return False


def csi_pipeline(sensor_id: int, settings: CaptureSettings) -> str:
    """The nvarguscamerasrc pipeline that turns a Jetson CSI camera into BGR frames for OpenCV."""
    width, height = settings.width or 1280, settings.height or 720
    fps = int(round(settings.fps or 30))
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, framerate=(fraction){fps}/1, "
        "format=(string)NV12 ! nvvidconv ! video/x-raw, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
    )


def _require_gstreamer(spec: str) -> None:
    import cv2

    if not opencv_has_gstreamer():
        raise UsageError(
            f"{spec} needs an OpenCV built with GStreamer, but the loaded cv2 {cv2.__version__} "
            f"({Path(cv2.__file__).parent}) has none; pip's opencv-python wheels never do: on JetPack run "
            "`pip uninstall opencv-python opencv-python-headless` so the system cv2 (apt python3-opencv) loads, "
            "or build OpenCV with -DWITH_GSTREAMER=ON"
        )


_NO_CAMERA_HINT = "; check the cable and `v4l2-ctl --list-devices`, or give a video file, a folder or `synthetic`"


def require_opencv() -> None:
    """One line instead of a traceback when cv2 is missing (a board whose system OpenCV is not on this Python)."""
    try:
        import cv2  # noqa: F401
    except ImportError as exc:
        raise UsageError(f"OpenCV is not importable ({exc}); on a Jetson use JetPack's system cv2 (apt install "
                         "python3-opencv, and a venv with --system-site-packages), elsewhere pip install "
                         "'segnet-edge[opencv]'") from None


def quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own warnings off stderr: our errors say it in one line, and FFmpeg's
    could print a stream URL with its credentials."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg first opens
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)


def open_source(spec: str, settings: CaptureSettings = CaptureSettings()) -> FrameSource:
    """Build (not yet open) the source that `--source` names; one-line error when it cannot exist."""
    import cv2

    quiet_opencv()
    spec = str(spec).strip()
    shown = redact(spec)
    if spec.lower() == "synthetic":
        return SyntheticSource(settings)
    if spec.isdigit():
        index = int(spec)
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            raise DataError(f"camera {index} not found (no /dev/video{index}){_NO_CAMERA_HINT}")
        return VideoCaptureSource(index, cv2.CAP_ANY, True, f"camera {index}", settings, _NO_CAMERA_HINT)
    if spec.startswith("/dev/video"):
        if not os.path.exists(spec):
            raise DataError(f"camera {spec} not found{_NO_CAMERA_HINT}")
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        return VideoCaptureSource(spec, api, True, f"camera {spec}", settings, _NO_CAMERA_HINT)
    if spec.lower().startswith("csi://"):
        sensor = spec[len("csi://"):]
        if not sensor.isdigit():
            raise UsageError(f"--source {shown}: give the CSI sensor id, e.g. csi://0")
        _require_gstreamer(spec)
        return VideoCaptureSource(csi_pipeline(int(sensor), settings), cv2.CAP_GSTREAMER, True, f"CSI camera {spec}",
                                  settings, "; is nvargus-daemon running and the camera seated?")
    if spec.lower().startswith(STREAM_SCHEMES):
        return VideoCaptureSource(spec, cv2.CAP_FFMPEG, True, f"stream {shown}", settings,
                                  "; check the URL, the network and the credentials")
    path = Path(spec).expanduser()
    if path.is_dir():
        return FolderSource(path)
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return _SingleImageFolder(path)
        return VideoCaptureSource(str(path), cv2.CAP_ANY, False, f"video file {path}", settings,
                                  ": not a video OpenCV can decode")
    raise DataError(
        f"--source {shown}: no such file, folder or camera; give a camera index (0), /dev/videoN, csi://N, "
        "an rtsp:// or http:// URL, a video file, an image folder or `synthetic`"
    )


class _SingleImageFolder(FolderSource):
    """One image file as a one-frame source."""

    def __init__(self, path: Path):
        super().__init__(path.parent)
        self.path = path
        self.description = f"image {path}"

    def open(self) -> None:
        self._files, self._next = [self.path], 0
