"""A live source whose read never returns (a dead stream on an OpenCV build without read timeouts, as
JetPack 4's 4.1 and GStreamer pipelines are) is left to its thread and replaced by a fresh connection;
a source that cannot be renewed, or whose renewals stall too, ends the run with a reason instead of
hanging it."""

from __future__ import annotations

import threading
import time

import numpy as np

from segnet_edge.device.backends.base import load_backend
from segnet_edge.device.pipeline import PipelineConfig, run_pipeline, stall_after
from segnet_edge.device.sources import CaptureSettings, FrameSource, ReadStatus, open_source


class _DeadAfter(FrameSource):
    """A live camera that delivers `frames` frames, then blocks inside read() until released."""

    live = True
    description = "camera that hangs"

    def __init__(self, frames: int):
        self.left = frames
        self.release = threading.Event()
        self.reads_started = 0

    def open(self) -> None:
        pass

    def read(self):
        self.reads_started += 1
        if self.left > 0:
            self.left -= 1
            time.sleep(0.01)
            return ReadStatus.OK, np.full((48, 64, 3), 90, np.uint8)
        self.release.wait()
        return ReadStatus.LOST, None


def test_a_read_that_never_returns_ends_the_run_as_stalled(artifacts):
    source = _DeadAfter(3)
    config = PipelineConfig(warmup=0, stall_timeout_s=1.0)
    started = time.perf_counter()
    threading.Timer(20, source.release.set).start()  # without the watchdog: fail, do not hang the suite
    try:
        with load_backend(artifacts / "model_fp32.tflite") as backend:
            result = run_pipeline(backend, source, config, [], threading.Event())
    finally:
        source.release.set()
    seconds = time.perf_counter() - started
    assert result.ended_by == ("camera that hangs stalled: a read or reconnect has not returned for 1 s (this "
                               "OpenCV build has no timeout for it)")
    assert len(list(result.records)) == 3 and source.reads_started == 4
    assert seconds < 10, f"took {seconds:.1f} s to give up on a 1 s stall"


def test_stalls_are_judged_after_opencv_own_timeout():
    assert stall_after(10.0) == 31.0 and stall_after(1.0) > 1.0
    assert PipelineConfig().stall_timeout_s == stall_after(10.0)


class _ReconnectHangs(_DeadAfter):
    """Drops after `frames` frames; opening it again then blocks, as opening a dead RTSP URL can."""

    def read(self):
        if self.left > 0:
            return super().read()
        return ReadStatus.LOST, None

    def reopen(self) -> bool:
        self.release.wait()
        return False


def test_a_reconnect_that_never_returns_ends_the_run_as_stalled(artifacts):
    source = _ReconnectHangs(2)
    config = PipelineConfig(warmup=0, stall_timeout_s=1.0, retries=3, retry_delay_s=0.01)
    threading.Timer(20, source.release.set).start()
    try:
        with load_backend(artifacts / "model_fp32.tflite") as backend:
            result = run_pipeline(backend, source, config, [], threading.Event())
    finally:
        source.release.set()
    assert result.ended_by.startswith("camera that hangs stalled: a read or reconnect has not returned for 1 s")
    assert len(list(result.records)) == 2


class _HangsOnce(_DeadAfter):
    """Hangs inside read() after `frames` frames; its fresh twins deliver frames (or hang too: `twins_hang`)."""

    def __init__(self, frames: int, twins_hang: bool = False, family: list | None = None):
        super().__init__(frames)
        self.twins_hang = twins_hang
        self.family = [] if family is None else family  # every instance, this one first
        self.family.append(self)
        self.opened, self.is_open = 0, True  # the first instance comes open, as run_pipeline takes it

    def open(self) -> None:
        self.opened += 1
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    def fresh(self):
        twin = _HangsOnce(0 if self.twins_hang else 10_000, self.twins_hang, self.family)
        twin.is_open = False
        return twin


def _run(artifacts, source: _HangsOnce, config: PipelineConfig):
    threading.Timer(20, lambda: [s.release.set() for s in source.family]).start()  # fail, do not hang
    try:
        with load_backend(artifacts / "model_fp32.tflite") as backend:
            return run_pipeline(backend, source, config, [], threading.Event())
    finally:
        for s in source.family:
            s.release.set()


def test_a_stalled_source_is_replaced_by_a_fresh_connection_and_the_stream_goes_on(artifacts):
    source = _HangsOnce(3)
    config = PipelineConfig(warmup=0, frames=8, stall_timeout_s=1.0, retries=2, retry_delay_s=0.01)
    started = time.perf_counter()
    result = _run(artifacts, source, config)
    assert result.ended_by == "--frames 8", result.ended_by
    assert len(list(result.records)) == 8 and result.reconnects == 1
    stuck, twin = source.family
    assert twin.opened == 1 and not twin.is_open  # the run opened its twin and closed it after
    assert time.perf_counter() - started < 10
    # the stuck read, once it returns, ends its thread, which closes the source it was stuck on
    deadline = time.perf_counter() + 5
    while stuck.is_open and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert not stuck.is_open


def test_fresh_connections_that_stall_too_end_the_run_after_the_retries(artifacts):
    source = _HangsOnce(2, twins_hang=True)
    config = PipelineConfig(warmup=0, stall_timeout_s=1.0, retries=2, retry_delay_s=0.01)
    started = time.perf_counter()
    result = _run(artifacts, source, config)
    assert result.ended_by == ("camera that hangs stalled: a read or reconnect has not returned for 1 s (this "
                               "OpenCV build has no timeout for it); 2 fresh connection(s) stalled too")
    assert len(list(result.records)) == 2 and len(source.family) == 3 and result.reconnects == 2
    assert time.perf_counter() - started < 15


def test_a_real_stream_stuck_in_opencv_goes_on_over_a_fresh_capture(artifacts):
    """The same through OpenCV: an MJPEG camera on 127.0.0.1 whose first connection hangs mid-stream while
    FFmpeg's own read timeout is far off (as with no timeout at all); a second cv2.VideoCapture is opened
    while the first is still blocked in grab(), and the stream goes on from it."""
    from tools.reliability.streams import FRAMES, camera

    frames = FRAMES + 6
    with camera("stall-once") as url:
        source = open_source(url, CaptureSettings(timeout_s=60.0))
        source.open()
        config = PipelineConfig(warmup=0, frames=frames, stall_timeout_s=1.0, retries=2, retry_delay_s=0.05)
        started = time.perf_counter()
        try:
            with load_backend(artifacts / "model_fp32.tflite") as backend:
                result = run_pipeline(backend, source, config, [], threading.Event())
        finally:
            source.close()  # still stuck: gives up on its lock after a while, as the board's run does
        seconds = time.perf_counter() - started
    assert result.ended_by == f"--frames {frames}", result.ended_by
    assert len(list(result.records)) == frames and result.reconnects == 1
    assert seconds < 20, f"took {seconds:.1f} s"
