"""One run from model files to reports: the part `run_camera.py` and `segnet-edge profile` share.

Every model is checked before any streaming starts (a bad third model should
not cost the first two's minutes); SIGINT / SIGTERM end the stream cleanly so
the report is still written.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from segnet_edge.device.backends.base import Backend, BackendOptions, load_backend
from segnet_edge.device.errors import UsageError
from segnet_edge.device.hostinfo import NvmlMonitor, TegrastatsMonitor, host_info, peak_rss_mb, rss_mb
from segnet_edge.device.pipeline import PipelineConfig, PipelineResult, run_pipeline
from segnet_edge.device.profiler import FrameLog, ModelReport, ProfileReport, summarize
from segnet_edge.device.reports import write_reports
from segnet_edge.device.sinks import DisplaySink, JsonLinesSink, MaskSink, Sink, VideoSink
from segnet_edge.device.sources import CaptureSettings, open_source, redact, require_opencv


@dataclass
class RunConfig:
    """Everything one run needs. These defaults are run_camera's; `profile_defaults()` gives profile's."""

    source: str = "0"
    backend: str | None = None  # None: chosen by the model file's extension
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    options: BackendOptions = field(default_factory=BackendOptions)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    out: str = "camera_out"  # report folder
    save_video: str | None = None
    save_masks: str | None = None
    jsonl: str | None = "frames.jsonl"  # relative paths land in `out`; "-" is stdout; None: no JSON lines
    display: bool = False
    plot: bool = True

    @classmethod
    def profile_defaults(cls) -> RunConfig:
        """`segnet-edge profile`: synthetic frames, a fixed count, reports only."""
        return cls(source="synthetic", out="profile_out", jsonl=None,
                   pipeline=PipelineConfig(frames=200, warmup=10))

    def to_json(self) -> dict:
        data = asdict(self)
        data["source"] = redact(self.source)
        return data

    def resolved_jsonl(self) -> str | None:
        if self.jsonl is None or self.jsonl == "-" or Path(self.jsonl).is_absolute():
            return self.jsonl
        return str(Path(self.out) / self.jsonl)


def with_given(obj, **values):
    """`obj` with the values that were actually given (not None): CLI flags override dataclass defaults."""
    return replace(obj, **{k: v for k, v in values.items() if v is not None})


@dataclass
class SessionResult:
    report: ProfileReport
    records: dict[str, FrameLog]
    written: list[Path]


class _StopOnSignal:
    """SIGINT / SIGTERM set `stop` (the stream ends and the report is written); a second SIGINT aborts."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self.signal_name: str | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame) -> None:
        if self.stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        self.stop.set()

    def __exit__(self, *exc_info) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def build_sinks(config: RunConfig, fps: float | None) -> list[Sink]:
    """Outputs in the order they must run: masks add their file name to the JSON line written last."""
    sinks: list[Sink] = []
    try:
        if config.display:
            sinks.append(DisplaySink())
        if config.save_video:
            sinks.append(VideoSink(config.save_video, fps))
        if config.save_masks:
            sinks.append(MaskSink(config.save_masks))
        jsonl = config.resolved_jsonl()
        if jsonl:
            sinks.append(JsonLinesSink(jsonl))
    except BaseException:
        for sink in sinks:
            sink.close(ok=False)
        raise
    return sinks


def _unique_keys(models: list[str]) -> list[str]:
    keys: list[str] = []
    for model in models:
        key, n = model, 2
        while key in keys:
            key, n = f"{model}#{n}", n + 1
        keys.append(key)
    return keys


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_session(models: list[str | Path], config: RunConfig, log: Callable[[str], None] = _log) -> SessionResult:
    """Stream `config.source` through each model in turn and write the reports into `config.out`."""
    if not models:
        raise UsageError("give at least one model file")
    wants_outputs = config.save_video or config.save_masks or config.display
    if len(models) > 1 and wants_outputs:
        raise UsageError("--save-video, --save-masks and --display take one model; profile several without them")
    if config.pipeline.frames is not None and config.pipeline.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {config.pipeline.frames}")
    if config.pipeline.warmup < 0:
        raise UsageError(f"--warmup must be 0 or more, got {config.pipeline.warmup}")
    if config.options.threads is not None and config.options.threads < 1:
        raise UsageError(f"--threads must be at least 1, got {config.options.threads}")
    require_opencv()
    if config.backend == "auto":  # time every candidate briefly, stream the fastest (device/autoselect.py)
        from segnet_edge.device.autoselect import resolve

        models, config = resolve(models, config, log)
    backends = [load_backend(m, config.backend, config.options) for m in models]  # fail fast on any bad model
    open_source(config.source, config.capture)  # fail fast on a bad --source, before loading a runtime
    stop = threading.Event()
    nvml = NvmlMonitor(config.options.device)
    report = ProfileReport(host=host_info(config.options.threads, nvml.name).to_json(), config=config.to_json())
    records: dict[str, FrameLog] = {}
    try:
        with _StopOnSignal(stop) as signals:
            for key, backend in zip(_unique_keys([str(m) for m in models]), backends):
                if stop.is_set():
                    break
                model_report, model_records = _run_one(key, backend, config, stop, nvml, log)
                report.models.append(model_report)
                records[key] = model_records
        report.interrupted = signals.signal_name
    finally:
        nvml.close()
    written = write_reports(config.out, report, records, plot=config.plot)
    return SessionResult(report, records, written)


def _run_one(key: str, backend: Backend, config: RunConfig, stop: threading.Event, nvml: NvmlMonitor,
             log: Callable[[str], None]) -> tuple[ModelReport, FrameLog]:
    source = open_source(config.source, config.capture)
    source.open()
    sinks: list[Sink] = []
    tegrastats = TegrastatsMonitor()
    ok = False
    try:
        sinks = build_sinks(config, source.fps)
        before_load = rss_mb()
        with backend:
            load_memory = {"rss_before_load_mb": before_load, "rss_loaded_mb": rss_mb(),
                           "model_pages_released_mb": backend.released_bytes / 2**20}
            runtime = backend.describe()
            log(f"{Path(key).name}: {runtime} on {source.description}")
            tegrastats.start()
            result: PipelineResult = run_pipeline(backend, source, config.pipeline, sinks, stop,
                                                  nvml if nvml.available else None)
            load_memory["rss_hwm_mb"] = peak_rss_mb()  # the process's peak, load and first frame included
            ok = True
    finally:
        device = tegrastats.stop()
        failed: list[Exception] = []
        for sink in sinks:  # every sink gets to commit or discard, even when one of them fails
            try:
                sink.close(ok)
            except Exception as exc:  # noqa: BLE001 - re-raised below once the others are closed
                failed.append(exc)
        source.close()
        if failed and ok:
            raise failed[0]
    model_report = summarize(result.records, model=key, backend=backend.name, runtime=runtime,
                             source=source.description, skipped_frames=result.skipped_frames,
                             dropped_frames=result.dropped_frames, reconnects=result.reconnects,
                             ended_by=result.ended_by, device=device, load_memory=load_memory)
    return model_report, result.records
