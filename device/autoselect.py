"""`--backend auto`: time every artifact this machine can run, briefly, and keep the fastest.

Which artifact is fastest depends on the machine, not on the format's name: on an x86 CPU with
VNNI, XNNPACK's int8 kernels beat ONNX Runtime's QDQ graph, on a Jetson a TensorRT engine beats
both, and without AVX-512 the order can flip again. So nothing is guessed: each candidate runs a
few frames through its own backend (the same code and timer the stream uses) and the lowest mean
inference time wins. The choice, every candidate's time and the reason are logged and written to
`OUT/autoselect.json`.

Candidates are the MODEL arguments, with folders expanded into the artifacts they hold (e.g.
`segnet-edge convert`'s output folder). Every candidate there has passed its parity check against
the Keras model at conversion, so speed is the only thing left to decide on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from segnet_edge.device.errors import DataError, IntegrityError, ModelFileError, UsageError

#: Frames per candidate: the first `warmup` are not counted (XNNPACK packs weights, ORT allocates).
DEFAULT_FRAMES, DEFAULT_WARMUP = 5, 2
REPORT_FILE = "autoselect.json"


@dataclass
class Candidate:
    """One artifact on one backend, and what measuring it found."""

    path: str
    backend: str
    runtime: str = ""
    mean_ms: float | None = None
    frames: int = 0
    error: str | None = None  # why it could not run here (missing runtime, bad file)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class AutoChoice:
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    reason: str = ""

    def to_json(self) -> dict:
        return {"chosen": self.chosen.to_json(), "reason": self.reason,
                "candidates": [c.to_json() for c in self.candidates]}

    def table(self) -> str:
        lines = ["| artifact | backend | mean inference ms | |", "|---|---|---:|---|"]
        for c in sorted(self.candidates, key=lambda c: (c.mean_ms is None, c.mean_ms or 0.0)):
            mark = "chosen" if c is self.chosen else (c.error or "")
            ms = f"{c.mean_ms:.2f}" if c.mean_ms is not None else "-"
            lines.append(f"| {Path(c.path).name} | {c.backend} | {ms} | {mark} |")
        return "\n".join(lines)


def expand(models: list[str | Path]) -> list[Path]:
    """MODEL arguments -> artifact files: folders give their artifacts (sorted; any suffix a backend runs,
    an engine's `.json` sidecar is not one), files stay."""
    from segnet_edge.device.backends.base import artifact_suffixes, is_artifact

    paths: list[Path] = []
    for model in models:
        model = Path(model)
        if model.is_dir():
            found = sorted(p for p in model.iterdir() if is_artifact(p) and p.is_file())
            if not found:
                raise UsageError(f"{model}: no {', '.join(artifact_suffixes())} artifacts in this folder")
            paths += found
        else:
            paths.append(model)
    return list(dict.fromkeys(paths))


def _input_for(backend) -> np.ndarray:
    """A frame-shaped input in the model's input type (values do not change dense kernels' time)."""
    spec = backend.expected_input
    rng = np.random.default_rng(0)
    if np.dtype(spec.dtype).kind in "iu":
        return rng.integers(-20, 20, size=spec.shape).astype(spec.dtype)
    return rng.normal(0.0, 50.0, size=spec.shape).astype(spec.dtype)


def measure(path: Path, options, frames: int = DEFAULT_FRAMES, warmup: int = DEFAULT_WARMUP,
            load: Callable | None = None) -> Candidate:
    """Mean inference time of one artifact on its backend; a failure is recorded, not raised, except damage
    the payload digest found (IntegrityError), which stops the run."""
    from segnet_edge.device.backends.base import backend_class, load_backend

    load = load or load_backend
    try:
        name = backend_class(path).name
    except (ModelFileError, UsageError) as exc:
        return Candidate(str(path), "?", error=str(exc))
    candidate = Candidate(str(path), name)
    try:
        with load(path, None, options) as backend:
            candidate.runtime = backend.describe()
            x = _input_for(backend)
            times = []
            for i in range(warmup + frames):
                backend.infer(x)
                if i >= warmup:
                    times.append(backend.inference_time)
    except IntegrityError:
        raise  # a damaged copy is not "cannot run here": the whole run stops and names it
    except (ModelFileError, UsageError, DataError, OSError) as exc:
        candidate.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return candidate
    candidate.mean_ms = 1000.0 * float(np.mean(times))
    candidate.frames = len(times)
    return candidate


def choose(models: list[str | Path], options, frames: int = DEFAULT_FRAMES, warmup: int = DEFAULT_WARMUP,
           log: Callable[[str], None] = lambda message: None, load: Callable | None = None) -> AutoChoice:
    """Measure every candidate (one at a time, so they do not compete) and pick the lowest mean."""
    candidates = []
    for path in expand(models):
        started = time.perf_counter()
        candidate = measure(path, options, frames, warmup, load)
        candidates.append(candidate)
        if candidate.error:
            log(f"auto: {path.name} ({candidate.backend}) cannot run here: {candidate.error}")
        else:
            log(f"auto: {path.name} ({candidate.backend}) {candidate.mean_ms:.2f} ms/frame "
                f"({time.perf_counter() - started:.1f} s to measure)")
    ran = sorted((c for c in candidates if c.mean_ms is not None), key=lambda c: c.mean_ms)
    if not ran:
        raise UsageError("--backend auto: none of the models runs on this machine: "
                         + "; ".join(f"{Path(c.path).name}: {c.error}" for c in candidates))
    best = ran[0]
    reason = (f"{Path(best.path).name} on {best.backend} had the lowest mean inference time, {best.mean_ms:.2f} ms "
              f"over {best.frames} frames after {warmup} warm-up")
    if len(ran) > 1:
        second = ran[1]
        reason += (f", {second.mean_ms / best.mean_ms:.2f}x faster than the next, {Path(second.path).name} on "
                   f"{second.backend} ({second.mean_ms:.2f} ms)")
    else:
        reason += " (the only candidate that runs here)"
    skipped = [c for c in candidates if c.error]
    if skipped:
        reason += f"; {len(skipped)} candidate(s) could not run here"
    return AutoChoice(best, candidates, reason)


def resolve(models: list[str | Path], config, log: Callable[[str], None]):
    """The `--backend auto` hook of run_session: (the chosen model, config with its backend named)."""
    choice = choose(models, config.options, log=log)
    log(f"auto: chose {choice.chosen.path}: {choice.reason}")
    from segnet_edge.device.atomic import write_text_atomic

    Path(config.out).mkdir(parents=True, exist_ok=True)
    write_text_atomic(Path(config.out) / REPORT_FILE, json.dumps(choice.to_json(), indent=2) + "\n")
    return [choice.chosen.path], replace(config, backend=choice.chosen.backend)
