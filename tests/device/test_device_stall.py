"""A live source whose read never returns (a dead stream on an OpenCV build without read timeouts, as
JetPack 4's 4.1 and GStreamer pipelines are) ends the run with a reason instead of hanging it."""

from __future__ import annotations

import threading
import time

import numpy as np

from segnet_edge.device.backends.base import load_backend
from segnet_edge.device.pipeline import PipelineConfig, run_pipeline, stall_after
from segnet_edge.device.sources import FrameSource, ReadStatus


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
