"""Timing many runtimes fairly on a busy 2-core machine: one worker process per row, interleaved rounds.

Each row (a runtime, an artifact, a thread count) lives in its own process, so its peak RSS is
its own and thread settings cannot leak between rows (TensorFlow fixes its thread pools once per
process). The parent then runs *rounds*: in each round every row infers one frame, one row at a
time, the order rotated every round. Background load that comes and goes therefore lands on every
row alike, and ratios from the same run stay meaningful even when absolute times drift.

Frames are the same for every row; the first rounds walk through all of them and keep each row's
label map (argmax agreement with Keras, mIoU), so no extra pass is needed for accuracy.
Keras rows run `model(x, training=False)` eagerly, as a user of the Keras model would; artifact
rows run through the board's own backends (segnet_edge.device.backends), which time the runtime
call alone.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class RowSpec:
    """One table row: what runs, on what, with how many threads."""

    key: str  # unique in the run
    group: str  # "full" | "demo": rows of one group share frames and the Keras reference
    label: str  # e.g. "TFLite int8"
    runtime: str  # "keras" | "litert" | "onnxruntime"
    precision: str  # fp32 | fp16 | int8
    threads: int
    path: str  # .h5 for Keras rows, else the artifact
    pooling: str = "argmax"  # bench.variants design (Keras rows build it from the .h5)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class RowResult:
    spec: RowSpec
    latencies_s: list[float] = field(default_factory=list)
    labels: dict[int, np.ndarray] = field(default_factory=dict)  # frame index -> (H, W) uint8
    margins: dict[int, np.ndarray] = field(default_factory=dict)  # Keras rows: top-1 minus top-2 probability
    peak_rss_mb: float | None = None
    load_s: float | None = None
    runtime_description: str = ""
    error: str | None = None

    def stats(self) -> dict[str, float] | None:
        if not self.latencies_s:
            return None
        values = np.asarray(self.latencies_s) * 1000.0
        return {"mean_ms": float(values.mean()), "median_ms": float(np.median(values)),
                "p90_ms": float(np.percentile(values, 90)), "min_ms": float(values.min()),
                "fps": float(1000.0 / values.mean()), "n": int(values.size)}


# --- the worker process ------------------------------------------------------------------------


def _set_threads(threads: int) -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[name] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"


class _KerasRunner:
    def __init__(self, spec: RowSpec):
        from segnet_edge._tf import tf

        tf.config.threading.set_intra_op_parallelism_threads(spec.threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        from bench.variants import with_pooling
        from segnet_edge.model_io import load_model

        self.model = with_pooling(load_model(spec.path), spec.pooling)
        self.description = f"TensorFlow {tf.__version__} eager model(x, training=False), threads={spec.threads}"

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return x

    def infer(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        started = time.perf_counter()
        out = self.model(x, training=False).numpy()
        return time.perf_counter() - started, out

    def to_labels(self, out: np.ndarray) -> np.ndarray:
        from segnet_edge.device.postprocess import label_map

        return label_map(out)[0]


class _BackendRunner:
    def __init__(self, spec: RowSpec):
        from segnet_edge.device.backends.base import BackendOptions, load_backend

        self.backend = load_backend(spec.path, spec.runtime, BackendOptions(threads=spec.threads))
        self.backend.activate()
        self.description = self.backend.describe()

    def prepare(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.backend.quantize_input(x))

    def infer(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        out = self.backend.infer(x)
        return self.backend.inference_time, out

    def to_labels(self, out: np.ndarray) -> np.ndarray:
        return self.backend.to_labels(out)[0]


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB.

    Not getrusage's ru_maxrss: Linux carries that across fork + exec, so a worker spawned by a
    parent that once held 14 GB would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _worker(spec: RowSpec, frames_path: str, conn) -> None:
    """Load, report ready, then serve ('run', frame, want_labels) / ('stats',) / ('stop',)."""
    _set_threads(spec.threads)
    try:
        started = time.perf_counter()
        runner = _KerasRunner(spec) if spec.runtime == "keras" else _BackendRunner(spec)
        frames = np.load(frames_path)
        inputs = [runner.prepare(frames[i:i + 1]) for i in range(len(frames))]
        conn.send(("ready", time.perf_counter() - started, runner.description))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent as this row's error
        conn.send(("error", f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                   traceback.format_exc()))
        return
    while True:
        message = conn.recv()
        if message[0] == "run":
            _, index, want_labels = message
            seconds, out = runner.infer(inputs[index])
            labels = runner.to_labels(out) if want_labels else None
            margin = None
            if want_labels and spec.runtime == "keras" and out.ndim == 4:  # (H, W) float16 keeps the pipe light
                from segnet_edge.convert.parity import top2_margin

                margin = top2_margin(out)[0].astype(np.float16)
            conn.send((seconds, labels if margin is None else (labels, margin)))
        elif message[0] == "stats":
            conn.send(peak_rss_mb())
        else:
            conn.send("bye")
            return


# --- the parent --------------------------------------------------------------------------------


class WorkerPool:
    """One live worker per row; `measure()` runs the interleaved rounds."""

    def __init__(self, specs: list[RowSpec], frames: np.ndarray, scratch: Path,
                 log: Callable[[str], None] = print, parallel: int = 3):
        self.specs = list(specs)
        self.parallel = max(1, parallel)
        self.log = log
        self.frames_path = str(scratch / f"frames_{os.getpid()}_{id(self)}.npy")
        np.save(self.frames_path, np.ascontiguousarray(frames, dtype=np.float32))
        self.frame_count = len(frames)
        self.results = {spec.key: RowResult(spec) for spec in self.specs}
        self._workers: dict[str, tuple] = {}

    def __enter__(self) -> WorkerPool:
        """Start every worker, `parallel` at a time (loading is I/O and one-core work), and wait for each."""
        context = multiprocessing.get_context("spawn")
        pending = list(self.specs)
        loading: list[tuple] = []
        while pending or loading:
            while pending and len(loading) < self.parallel:
                spec = pending.pop(0)
                parent, child = context.Pipe()
                process = context.Process(target=_worker, args=(spec, self.frames_path, child), daemon=True)
                process.start()
                loading.append((spec, process, parent))
            spec, process, parent = loading.pop(0)
            try:
                message = parent.recv()
            except EOFError:
                message = ("error", f"worker died while loading (exit code {process.exitcode})", "")
            result = self.results[spec.key]
            if message[0] == "ready":
                result.load_s, result.runtime_description = message[1], message[2]
                self._workers[spec.key] = (process, parent)
                self.log(f"  ready: {spec.key} ({message[1]:.1f} s) {message[2]}")
            else:
                result.error = message[1]
                self.log(f"  FAILED: {spec.key}: {message[1]}")
                process.join(timeout=10)
        return self

    def measure(self, rounds: int | Callable[[float], int], warmup: int = 1,
                progress: Callable[[int, float], None] | None = None) -> None:
        """`warmup` untimed rounds, then `rounds` timed ones; labels for every frame along the way.

        `rounds` may be a function of the last warm-up round's seconds: a time budget decides how
        many rounds fit (at least one)."""
        live = [spec for spec in self.specs if spec.key in self._workers]
        if not isinstance(rounds, int):
            warmup = max(1, warmup)  # the budget is judged on a warm-up round's time
        total = warmup + rounds if isinstance(rounds, int) else None
        r = 0
        while total is None or r < total:
            started = time.perf_counter()
            index = r % self.frame_count
            want_labels = r < self.frame_count
            shift = r % max(1, len(live))
            for spec in live[shift:] + live[:shift]:
                if spec.key not in self._workers:
                    continue
                reply = self._ask(spec, ("run", index, want_labels))
                if reply is None:
                    continue
                seconds, labels = reply
                result = self.results[spec.key]
                if isinstance(labels, tuple):
                    labels, result.margins[index] = labels
                if labels is not None:
                    result.labels[index] = labels
                if r >= warmup:
                    result.latencies_s.append(seconds)
            seconds = time.perf_counter() - started
            if total is None and r == warmup - 1:
                total = warmup + max(1, int(rounds(seconds)))
            if progress is not None:
                progress(r, seconds, total)
            r += 1
        # Frames beyond the rounds run still need their labels once.
        missing = [i for i in range(self.frame_count) if i >= (total or 0)]
        for index in missing:
            for spec in live:
                reply = self._ask(spec, ("run", index, True)) if spec.key in self._workers else None
                if reply is not None:
                    labels = reply[1]
                    if isinstance(labels, tuple):
                        labels, self.results[spec.key].margins[index] = labels
                    self.results[spec.key].labels[index] = labels

    def _ask(self, spec: RowSpec, message: tuple):
        """Send one command; a worker that died (e.g. killed for memory) loses its row, not the run."""
        process, conn = self._workers[spec.key]
        try:
            conn.send(message)
            return conn.recv()
        except (EOFError, OSError, BrokenPipeError):
            self.results[spec.key].error = f"worker died (exit code {process.exitcode})"
            self.log(f"  FAILED: {spec.key}: {self.results[spec.key].error}")
            del self._workers[spec.key]
            return None

    def __exit__(self, *exc_info) -> None:
        for key, (process, conn) in self._workers.items():
            try:
                conn.send(("stats",))
                self.results[key].peak_rss_mb = conn.recv()
                conn.send(("stop",))
                conn.recv()
            except (EOFError, OSError, BrokenPipeError):
                pass
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        self._workers.clear()
        Path(self.frames_path).unlink(missing_ok=True)
