"""capture thread (read -> preprocess) -> main loop (infer) -> output thread (postprocess -> render -> sinks).

Three threads so that everything around inference overlaps it: the runtimes,
OpenCV and numpy release the GIL in their heavy calls, so with inference the
bottleneck the stream runs at the inference rate. The capture queue is bounded:
for live sources it keeps only the newest frames (stale frames are dropped and
counted), for files and folders it blocks the reader so no frame is lost.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from segnet_edge.device.backends.base import Backend
from segnet_edge.device.hostinfo import NvmlMonitor, rss_mb
from segnet_edge.device.profiler import FrameLog, FrameRecord
from segnet_edge.device.render import Renderer
from segnet_edge.device.sinks import Sink
from segnet_edge.device.sources import CaptureSettings, FrameSource, ReadStatus

MAX_CONSECUTIVE_SKIPS = 50  # a source that yields only unreadable frames is treated as ended / lost
MAX_RETRY_DELAY_S = 8.0


def stall_after(timeout_s: float) -> float:
    """When a live read counts as stalled: well after OpenCV's own --timeout had its chance to answer."""
    return 3 * timeout_s + 1


@dataclass
class PipelineConfig:
    """Knobs of one streaming run (the CLI's defaults are these)."""

    frames: int | None = None  # stop after this many frames, warm-up included; None = until the source ends
    warmup: int = 10  # frames excluded from the summary (runtime caches, allocator, clocks settle)
    alpha: float = 0.5  # overlay opacity
    legend: bool = True
    queue_size: int = 2  # capture queue for files, folders and synthetic frames (blocking, no drops)
    live_queue_size: int = 1  # capture queue for cameras and streams (keep-latest)
    retries: int = 5  # reconnect attempts when a live source drops
    retry_delay_s: float = 0.5  # first reconnect delay; doubles per attempt up to MAX_RETRY_DELAY_S
    #: A live source's read (or reconnect) that has not returned for this long is stalled: the run goes on with a fresh
    #: connection to the same device or URL (up to `retries` in a row without a frame), then ends ("stalled"). OpenCV's
    #: own read timeout (--timeout) answers first where the build has one; JetPack 4's OpenCV 4.1 and GStreamer
    #: pipelines have none and would block forever on a dead stream. None: wait forever.
    stall_timeout_s: float | None = stall_after(CaptureSettings.timeout_s)

    def to_json(self) -> dict:
        return asdict(self)


#: FrameQueue.get's answer when its timeout passed with nothing queued.
EMPTY = object()
#: How often the main loop looks at a live source's read while it waits for a frame.
STALL_POLL_S = 0.5


class FrameQueue:
    """Bounded queue; `keep_latest` drops the oldest item instead of blocking when full."""

    def __init__(self, maxsize: int, keep_latest: bool):
        self.maxsize = max(1, maxsize)
        self.keep_latest = keep_latest
        self.dropped = 0
        self._items: collections.deque = collections.deque()
        self._closed = False
        self._cond = threading.Condition()

    def put(self, item, stop: threading.Event) -> bool:
        """Add an item; False when the run is stopping (the item is discarded)."""
        with self._cond:
            while len(self._items) >= self.maxsize:
                if self.keep_latest:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if stop.is_set() or self._closed:
                    return False
                self._cond.wait(0.05)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def wait_for_space(self, stop: threading.Event) -> bool:
        """Block until a put would not block (always true for keep-latest); False when the run stops.

        A file reader waits here before reading, so a frame's latency starts when
        the pipeline can take it, as with a camera, not when the reader ran ahead.
        """
        with self._cond:
            while not self.keep_latest and len(self._items) >= self.maxsize:
                if stop.is_set() or self._closed:
                    return False
                self._cond.wait(0.05)
            return True

    def get(self, stop: threading.Event, timeout_s: float | None = None):
        """The next item; None when the producer has finished (or the run stops) and nothing is left;
        EMPTY when `timeout_s` passed with nothing to take."""
        deadline = None if timeout_s is None else time.perf_counter() + timeout_s
        with self._cond:
            while not self._items:
                if self._closed or stop.is_set():
                    return None
                if deadline is not None and time.perf_counter() >= deadline:
                    return EMPTY
                self._cond.wait(0.05)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


@dataclass
class _Captured:
    frame: np.ndarray
    x: np.ndarray  # the model input, preprocessed
    captured: float  # perf_counter() when the frame was read
    preprocess_ms: float


class CaptureThread(threading.Thread):
    """Reads and preprocesses frames into the queue; reconnects a live source with backoff when it drops.

    `renewal`: the source is a fresh, unopened twin of one stuck in a read; this thread opens it (with
    the usual backoff and retries) and closes it when done, since no caller knows about it.
    """

    def __init__(self, source: FrameSource, queue: FrameQueue, config: PipelineConfig,
                 prepare: Callable[[np.ndarray], np.ndarray], renewal: bool = False):
        super().__init__(name="capture", daemon=True)
        self.source, self.queue, self.config, self.prepare = source, queue, config, prepare
        self.stop = threading.Event()  # this thread's own: a stuck thread is abandoned, not the run
        self.renewal = renewal
        self.abandoned = False
        self.skipped = 0
        self.reconnects = 0
        self.ended_by = "end of source"
        self.error: BaseException | None = None
        self.call_started: float | None = None  # perf_counter() when the read or reopen in progress began

    def stalled_for(self) -> float:
        """Seconds the source's read or reopen in progress has been running (0 between them)."""
        started = self.call_started
        return 0.0 if started is None else time.perf_counter() - started

    def abandon(self) -> None:
        """Give up on a read that does not return: whenever it does, the thread ends and closes its source."""
        self.abandoned = True
        self.stop.set()
        self.queue.close()

    def run(self) -> None:
        try:
            if not self.renewal or self._reconnect():
                self._loop()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            if not self.abandoned:
                self.error = exc
                self.ended_by = "capture error"
        finally:
            self.queue.close()
            if self.renewal or self.abandoned:
                self.source.close()

    def _loop(self) -> None:
        consecutive_skips = 0
        while not self.stop.is_set():
            if not self.queue.wait_for_space(self.stop):
                return
            self.call_started = time.perf_counter()
            status, frame = self.source.read()
            self.call_started = None
            if status is ReadStatus.OK:
                consecutive_skips = 0
                captured = time.perf_counter()
                x = self.prepare(frame)
                item = _Captured(frame, x, captured, (time.perf_counter() - captured) * 1e3)
                if not self.queue.put(item, self.stop):
                    return
                continue
            if status is ReadStatus.SKIP:
                self.skipped += 1
                consecutive_skips += 1
                if consecutive_skips < MAX_CONSECUTIVE_SKIPS:
                    continue
                status = ReadStatus.LOST if self.source.live else ReadStatus.END
            if status is ReadStatus.END:
                self.ended_by = "end of source"
                return
            if not self._reconnect():
                return
            consecutive_skips = 0

    def _reconnect(self) -> bool:
        delay = self.config.retry_delay_s
        for attempt in range(1, self.config.retries + 1):
            if self.stop.wait(delay):
                return False
            self.call_started = time.perf_counter()  # opening a dead stream can block as long as reading it
            reopened = self.source.reopen()
            self.call_started = None
            if reopened:
                self.reconnects += 1
                return True
            delay = min(delay * 2, MAX_RETRY_DELAY_S)
            self.ended_by = f"{self.source.description} lost ({attempt} reconnect attempts failed)"
        if self.config.retries <= 0:
            self.ended_by = f"{self.source.description} lost"
        return False


@dataclass
class _Work:
    index: int
    frame: np.ndarray
    raw: np.ndarray  # the model's output
    captured: float
    capture_ms: float
    preprocess_ms: float
    inference_ms: float


@dataclass
class PipelineResult:
    records: FrameLog = field(default_factory=FrameLog)
    skipped_frames: int = 0
    dropped_frames: int = 0
    reconnects: int = 0
    ended_by: str = "end of source"


class OutputThread(threading.Thread):
    """Postprocesses (the backend's `to_segmentation`, which needs no runtime) and renders each inferred frame,
    hands it to the sinks, records timings and memory."""

    def __init__(self, queue: FrameQueue, renderer: Renderer, sinks: list[Sink], backend: Backend,
                 warmup: int, t0: float, stop: threading.Event, nvml: NvmlMonitor | None):
        super().__init__(name="output", daemon=True)
        self.queue, self.renderer, self.sinks, self.backend = queue, renderer, sinks, backend
        self.class_names, self.warmup, self.t0, self.stop = backend.metadata.class_names, warmup, t0, stop
        self.nvml = nvml
        self.records = FrameLog()
        self.error: BaseException | None = None
        self.stopped_by_sink = False
        self._fps: float | None = None
        self._last_done: float | None = None

    def run(self) -> None:
        try:
            while (work := self.queue.get(_NEVER)) is not None:
                self._handle(work)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            self.stop.set()

    def _handle(self, work: _Work) -> None:
        start = time.perf_counter()
        seg = self.backend.to_segmentation(work.raw, work.frame.shape[:2])
        rendering = time.perf_counter()
        postprocess_ms = (rendering - start) * 1e3
        annotated = self.renderer.render(work.frame, seg.frame_labels, self._fps)
        render_ms = (time.perf_counter() - rendering) * 1e3
        rss = rss_mb()
        line = {
            "frame": work.index, "warmup": work.index < self.warmup,
            "latency_ms": {"capture": round(work.capture_ms, 3), "preprocess": round(work.preprocess_ms, 3),
                           "inference": round(work.inference_ms, 3), "postprocess": round(postprocess_ms, 3),
                           "render": round(render_ms, 3)},
            "rss_mb": round(rss, 2),
            "confidence": None if seg.confidence is None else round(seg.confidence, 4),
            "classes": {n: round(float(f), 4) for n, f in zip(self.class_names, seg.class_fractions)},
        }
        writing = time.perf_counter()
        for sink in self.sinks:
            if not sink.write(work.index, annotated, seg, line):
                self.stopped_by_sink = True
                self.stop.set()
        done = time.perf_counter()
        if self._last_done is not None and done > self._last_done:
            instant = 1.0 / (done - self._last_done)
            self._fps = instant if self._fps is None else 0.9 * self._fps + 0.1 * instant
        self._last_done = done
        self.records.append(FrameRecord(
            index=work.index, warmup=work.index < self.warmup, start_s=work.captured - self.t0,
            done_s=done - self.t0, capture_ms=work.capture_ms, preprocess_ms=work.preprocess_ms,
            inference_ms=work.inference_ms, postprocess_ms=postprocess_ms, render_ms=render_ms,
            write_ms=(done - writing) * 1e3, total_ms=(done - work.captured) * 1e3,
            rss_mb=rss, gpu_mem_mb=self.nvml.used_mb() if self.nvml else None,
        ))


_NEVER = threading.Event()  # the output thread drains its queue until the main loop closes it


def run_pipeline(backend: Backend, source: FrameSource, config: PipelineConfig, sinks: list[Sink],
                 stop: threading.Event, nvml: NvmlMonitor | None = None) -> PipelineResult:
    """Stream an open source through an active backend until the source ends, `frames` are done or
    `stop` is set. Threads are joined and sinks left open (the caller closes them)."""
    metadata = backend.metadata
    renderer = Renderer(metadata, alpha=config.alpha, legend=config.legend)
    capture_size = config.live_queue_size if source.live else config.queue_size

    def start_capture(from_source: FrameSource, renewal: bool) -> CaptureThread:
        thread = CaptureThread(from_source, FrameQueue(capture_size, keep_latest=source.live), config,
                               backend.prepare_input, renewal)
        thread.start()
        return thread

    output_q = FrameQueue(config.queue_size, keep_latest=False)
    t0 = time.perf_counter()
    output = OutputThread(output_q, renderer, sinks, backend, config.warmup, t0, stop, nvml)
    capture = start_capture(source, renewal=False)
    captures = [capture]  # every capture thread of the run, abandoned ones first
    output.start()
    index = 0
    stalled = None
    renewals = 0  # stuck connections replaced since the last frame
    watch = source.live and config.stall_timeout_s is not None
    try:
        while not stop.is_set() and (config.frames is None or index < config.frames):
            start = time.perf_counter()
            item = capture.queue.get(stop, STALL_POLL_S if watch else None)
            while item is EMPTY:
                if capture.stalled_for() >= config.stall_timeout_s:
                    # A read (or reopen) stuck in native code cannot be interrupted, closed or reopened: leave
                    # it to its thread and go on with a fresh connection to the same device or URL.
                    replacement = capture.source.fresh() if renewals < config.retries else None
                    if replacement is None:
                        stalled = (f"{source.description} stalled: a read or reconnect has not returned for "
                                   f"{config.stall_timeout_s:g} s (this OpenCV build has no timeout for it)")
                        if renewals:
                            stalled += f"; {renewals} fresh connection(s) stalled too"
                        break
                    renewals += 1
                    capture.abandon()
                    capture = start_capture(replacement, renewal=True)
                    captures.append(capture)
                item = capture.queue.get(stop, STALL_POLL_S)
            if item is None or item is EMPTY:
                break
            renewals = 0
            waited_ms = (time.perf_counter() - start) * 1e3
            raw = backend.infer(item.x)
            work = _Work(index, item.frame, raw, item.captured, waited_ms, item.preprocess_ms,
                         backend.inference_time * 1e3)
            if not output_q.put(work, stop):
                break
            index += 1
    finally:
        capture.stop.set()
        output_q.close()
        output.join()
        # a thread stuck in a native read cannot be woken; it is a daemon and goes with the process
        capture.join(timeout=0.5 if stalled else 10)
    for thread in (output, capture):
        if thread.error is not None:
            raise thread.error
    ended_by = stalled or capture.ended_by
    if output.stopped_by_sink:
        ended_by = "window closed"
    elif config.frames is not None and index >= config.frames:
        ended_by = f"--frames {config.frames}"
    elif stop.is_set():
        ended_by = "stop request"
    return PipelineResult(records=output.records, skipped_frames=sum(c.skipped for c in captures),
                          dropped_frames=sum(c.queue.dropped for c in captures),
                          reconnects=sum(c.reconnects for c in captures), ended_by=ended_by)
