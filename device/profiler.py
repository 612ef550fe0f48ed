"""Per-frame timings and memory, and the summaries the reports are made of.

A frame's stages are measured where they happen: `capture` is how long the
inference loop waited for a ready frame, `preprocess` runs in the capture thread,
`inference` is the backend's own timing, `postprocess`, `render` and `write` (the
outputs: video file, mask PNGs, JSON lines, display window) run in the output
thread. Stages overlap across frames, so FPS can exceed 1000 / total: `total` is
the frame's latency from the moment it was read to the moment its outputs were
written, queueing between threads included (a file source is read ahead, so its
frames queue; a live camera keeps only the newest).
Warm-up frames are recorded (they are real frames) but excluded from summaries.

Records live in a `FrameLog`: 8 bytes per number and bounded, so a camera that
streams for days does not grow the process (the report then covers the latest
frames and says how many).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields

import numpy as np

STAGES = ("capture", "preprocess", "inference", "postprocess", "render", "write", "total")
PERCENTILES = (("p50", 50), ("p90", 90), ("p99", 99))


@dataclass
class FrameRecord:
    index: int
    warmup: bool
    start_s: float  # since the run started: when the frame was read
    done_s: float  # when its outputs were written
    capture_ms: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    render_ms: float
    write_ms: float
    total_ms: float
    rss_mb: float
    gpu_mem_mb: float | None = None

    def stage_ms(self, stage: str) -> float:
        return getattr(self, f"{stage}_ms")

    def to_json(self) -> dict:
        return asdict(self)


_FIELDS = tuple(f.name for f in fields(FrameRecord))
#: Frames a FrameLog keeps by default: about an hour at 30 FPS in 10 MB.
DEFAULT_KEEP = 100_000


class FrameLog:
    """FrameRecords stored as rows of one float64 array that grows by doubling up to `keep` rows and
    then keeps the newest `keep` (a ring). Iterating yields FrameRecords in frame order."""

    def __init__(self, keep: int = DEFAULT_KEEP):
        self.keep = max(1, int(keep))
        self._rows = np.empty((min(1024, self.keep), len(_FIELDS)), np.float64)
        self._count = 0  # rows ever appended
        self.warmup_count = 0  # warm-up rows ever appended

    @classmethod
    def from_records(cls, records: Iterable[FrameRecord], keep: int = DEFAULT_KEEP) -> FrameLog:
        log = cls(keep)
        for record in records:
            log.append(record)
        return log

    def append(self, record: FrameRecord) -> None:
        if self._count < self.keep and self._count == len(self._rows):
            grown = np.empty((min(self.keep, 2 * len(self._rows)), len(_FIELDS)), np.float64)
            grown[: self._count] = self._rows
            self._rows = grown
        row = [math.nan if v is None else float(v) for v in (getattr(record, f) for f in _FIELDS)]
        self._rows[self._count % self.keep] = row
        self._count += 1
        self.warmup_count += bool(record.warmup)

    @property
    def measured_count(self) -> int:
        """Measured (non warm-up) rows ever appended, kept or not."""
        return self._count - self.warmup_count

    @property
    def dropped(self) -> int:
        """Oldest records no longer kept."""
        return max(0, self._count - self.keep)

    def __len__(self) -> int:
        return min(self._count, self.keep)

    def _ordered(self) -> np.ndarray:
        if self._count <= self.keep:
            return self._rows[: self._count]
        start = self._count % self.keep
        return np.concatenate([self._rows[start:], self._rows[:start]])

    def column(self, name: str, warmup: bool | None = None) -> np.ndarray:
        """One field over the kept frames, optionally only warm-up (True) or measured (False) ones."""
        rows = self._ordered()
        values = rows[:, _FIELDS.index(name)]
        if warmup is None:
            return values.copy()
        mask = rows[:, _FIELDS.index("warmup")] > 0
        return values[mask if warmup else ~mask]

    def __iter__(self) -> Iterator[FrameRecord]:
        for row in self._ordered():
            values = dict(zip(_FIELDS, row.tolist()))
            values["index"], values["warmup"] = int(values["index"]), bool(values["warmup"])
            if math.isnan(values["gpu_mem_mb"]):
                values["gpu_mem_mb"] = None
            yield FrameRecord(**values)


def stage_stats(values: list[float] | np.ndarray) -> dict[str, float]:
    """mean, p50, p90, p99 and max of one stage's milliseconds (NaN when there are none)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {"mean": math.nan, **{name: math.nan for name, _ in PERCENTILES}, "max": math.nan}
    stats = {"mean": float(data.mean())}
    for name, q in PERCENTILES:
        stats[name] = float(np.percentile(data, q))
    stats["max"] = float(data.max())
    return stats


def rss_growth(values: list[float]) -> float:
    """RSS at the end minus RSS at the start of the measured frames, each a median over a short
    window so that one allocator blip does not read as a leak."""
    if len(values) < 2:
        return 0.0
    window = max(1, min(50, len(values) // 10))
    return float(np.median(values[-window:]) - np.median(values[:window]))


@dataclass
class ModelReport:
    model: str
    backend: str
    runtime: str
    source: str
    frames: int  # measured frames (after warm-up)
    warmup_frames: int
    fps: float  # end to end, measured frames / their wall time
    latency_ms: dict[str, dict[str, float]]
    memory: dict[str, float | None]
    skipped_frames: int = 0  # unreadable frames the source produced
    dropped_frames: int = 0  # live frames replaced by newer ones before they were processed
    reconnects: int = 0
    ended_by: str = "end of source"
    device: dict | None = None  # tegrastats summary on a Jetson
    summary_window: int | None = None  # set when only the latest frames were kept for the statistics

    def to_json(self) -> dict:
        return asdict(self)


def steady_rss(values: list[float] | np.ndarray) -> float | None:
    """RSS once the run has settled: the median over the last frames (rss_growth's window)."""
    if len(values) == 0:
        return None
    window = max(1, min(50, len(values) // 10))
    return float(np.median(np.asarray(values)[-window:]))


def summarize(
    records: FrameLog | Iterable[FrameRecord], *, model: str, backend: str, runtime: str, source: str,
    load_memory: dict[str, float | None] | None = None, **extra
) -> ModelReport:
    """Reduce a run's frame records to one ModelReport (warm-up frames excluded).

    `load_memory`: RSS taken around loading the model (see session._run_one); with the first frame's and
    the steady state's it splits the peak into what the runtime holds after load, what the first frame
    adds (lazy allocations) and what a long run settles at."""
    log = records if isinstance(records, FrameLog) else FrameLog.from_records(records)
    measured_done, warm_done = log.column("done_s", warmup=False), log.column("done_s", warmup=True)
    count = len(measured_done)
    if count:
        start = warm_done[-1] if len(warm_done) else log.column("start_s", warmup=False)[0]
        elapsed = measured_done[-1] - start
        fps = count / elapsed if elapsed > 0 else math.nan
    else:
        fps = math.nan
    latency = {stage: stage_stats(log.column(f"{stage}_ms", warmup=False)) for stage in STAGES}
    rss = log.column("rss_mb", warmup=False)
    all_rss = log.column("rss_mb")
    gpu = log.column("gpu_mem_mb", warmup=False)
    gpu = gpu[~np.isnan(gpu)]
    memory = {
        "rss_start_mb": float(rss[0]) if len(rss) else None,
        "rss_peak_mb": float(all_rss.max()) if len(all_rss) else None,
        "rss_growth_mb": rss_growth(rss.tolist()),
        "gpu_mem_peak_mb": float(gpu.max()) if len(gpu) else None,
        **(load_memory or {}),
        "rss_first_frame_mb": float(all_rss[0]) if len(all_rss) else None,
        "rss_steady_mb": steady_rss(rss),
    }
    if log.dropped:
        extra.setdefault("summary_window", len(log))
    return ModelReport(model=model, backend=backend, runtime=runtime, source=source, frames=log.measured_count,
                       warmup_frames=log.warmup_count, fps=fps, latency_ms=latency, memory=memory, **extra)


@dataclass
class ProfileReport:
    """Everything profile.json holds: the host, the run's configuration and one entry per model."""

    host: dict
    config: dict
    models: list[ModelReport] = field(default_factory=list)
    interrupted: str | None = None  # the signal that ended the run early, if any

    def to_json(self) -> dict:
        return {"host": self.host, "config": self.config, "models": [m.to_json() for m in self.models],
                "interrupted": self.interrupted}
