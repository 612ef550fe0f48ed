"""The board budget: each artifact streamed by `device/run_camera.py` in a process of its own.

    python bench/budget.py ARTIFACT... [--frames 200] [--warmup 10] [--threads 2] [--label NAME=ARTIFACT ...]

A Jetson-class board shares its memory between CPU and GPU, so what the runtime holds is a budget.
Measured as the board runs it: a fresh `python device/run_camera.py` per artifact (no TensorFlow, no
other model in the process), a video file of CamVid-size frames (480x360) as the source, the overlay
rendered, `--threads` runtime threads. The figures come from the run's own profile.json and frames.csv:

- peak RSS: the process's high-water mark (VmHWM), loading included; RSS with the model loaded, after
  the first frame, and steady (median of the last frames); the model file's mapped pages the backend
  dropped from RSS once loaded (LiteRT, device/backends/mapped_pages.py; – where a report predates it);
- pipeline FPS against 1 / median inference (>= 0.9: capture and output overlap inference);
- pre + post share: (preprocess + postprocess + render) means over the inference mean (<= 10%);
- soak slope: least-squares RSS slope over the second half of the measured frames, in MB per 1,000 frames,
  and that slope extrapolated to 5,000 frames (the issue's soak: RSS growth < 10 MB).
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RUN_CAMERA = REPO / "device" / "run_camera.py"
#: CamVid's frame size (width, height): what a board's camera stream is resized from.
VIDEO_SIZE = (480, 360)
SOAK_FRAMES = 5000
GOAL_PEAK_MB, GOAL_FPS_RATIO, GOAL_PRE_POST, GOAL_SOAK_MB = 150.0, 0.9, 0.10, 10.0


@dataclass
class BudgetRow:
    label: str
    runtime: str
    frames: int  # measured, after warm-up
    peak_rss_mb: float | None
    loaded_rss_mb: float | None
    first_frame_rss_mb: float | None
    steady_rss_mb: float | None
    fps: float
    inference_ms: float  # median
    fps_ratio: float  # pipeline FPS / (1 / median inference)
    pre_post_share: float  # (preprocess + postprocess + render) / inference, means
    soak_mb_per_1000: float  # RSS slope over the measured frames
    error: str | None = None
    released_mb: float | None = None  # the mapped model file's pages dropped after loading (LiteRT)

    @property
    def soak_5000_mb(self) -> float:
        return self.soak_mb_per_1000 * SOAK_FRAMES / 1000

    def to_json(self) -> dict:
        return {**asdict(self), "soak_5000_mb": self.soak_5000_mb}


def write_video(path: Path, frames: int, size: tuple[int, int] = VIDEO_SIZE) -> Path:
    """`frames` street-like frames with moving shapes (the synthetic source's) as an MJPG .avi."""
    import cv2

    sys.path.insert(0, str(REPO))
    from segnet_edge.device.sources import CaptureSettings, SyntheticSource

    source = SyntheticSource(CaptureSettings(width=size[0], height=size[1]))
    source.open()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    try:
        for _ in range(frames):
            writer.write(source.read()[1])
    finally:
        writer.release()
    return path


def soak_slope(rss_mb: list[float]) -> float:
    """MB per 1,000 frames: the least-squares slope of RSS over the second half of the frames (the first half
    is the allocators settling, which a short run would otherwise extrapolate as a leak); 0 under 20 frames."""
    if len(rss_mb) < 20:
        return 0.0
    tail = np.asarray(rss_mb[len(rss_mb) // 2:], dtype=np.float64)
    return float(np.polyfit(np.arange(len(tail), dtype=np.float64), tail, 1)[0] * 1000)


def run_in_own_process(model: Path, source: Path | str, out: Path, frames: int, warmup: int, threads: int | None,
                       extra: tuple[str, ...] = (), timeout_s: float = 1800) -> tuple[dict, list[float]]:
    """(profile.json's entry for `model`, RSS of each measured frame) from a fresh run_camera.py."""
    command = [sys.executable, str(RUN_CAMERA), "-m", str(model), "--source", str(source), "--frames",
               str(frames), "--warmup", str(warmup), *(["--threads", str(threads)] if threads else []),
               "--out", str(out), "--no-plot", "--jsonl", "none", *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1])
    entry = json.loads((out / "profile.json").read_text())["models"][0]
    with open(out / "frames.csv", newline="") as f:
        rss = [float(row["rss_mb"]) for row in csv.DictReader(f) if row["warmup"] == "0"]
    return entry, rss


def budget_row(label: str, entry: dict, rss: list[float]) -> BudgetRow:
    lat, memory = entry["latency_ms"], entry["memory"]
    inference_mean = lat["inference"]["mean"] or float("nan")
    median = lat["inference"]["p50"] or float("nan")
    peaks = [v for v in (memory.get("rss_hwm_mb"), memory.get("rss_peak_mb")) if v is not None]
    return BudgetRow(
        label=label, runtime=entry["runtime"], frames=entry["frames"], peak_rss_mb=max(peaks) if peaks else None,
        loaded_rss_mb=memory.get("rss_loaded_mb"), first_frame_rss_mb=memory.get("rss_first_frame_mb"),
        steady_rss_mb=memory.get("rss_steady_mb"), fps=entry["fps"] or float("nan"), inference_ms=median,
        fps_ratio=(entry["fps"] or float("nan")) * median / 1000,
        pre_post_share=sum(lat[s]["mean"] or 0.0 for s in ("preprocess", "postprocess", "render")) / inference_mean,
        soak_mb_per_1000=soak_slope(rss), released_mb=memory.get("model_pages_released_mb"))


def measure(models: dict[str, Path], frames: int = 200, warmup: int = 10, threads: int = 2,
            work: Path | None = None, log=print, frames_for: dict[str, int] | None = None) -> list[BudgetRow]:
    """One fresh run_camera.py per model (label -> artifact), on one video of `frames` frames; `frames_for`:
    fewer frames for some labels (a slow runtime within a time budget)."""
    with tempfile.TemporaryDirectory(prefix="segnet_budget_") as scratch:
        folder = Path(work or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        video = write_video(folder / "budget.avi", frames)
        rows = []
        for n, (label, model) in enumerate(models.items()):
            try:
                count = min(frames, (frames_for or {}).get(label, frames))
                log(f"budget: {label} ({model.name}), {count} frames in a process of its own")
                entry, rss = run_in_own_process(model, video, folder / f"run{n}", count, warmup, threads)
                rows.append(budget_row(label, entry, rss))
            except (RuntimeError, subprocess.TimeoutExpired, OSError, KeyError, ValueError) as exc:
                log(f"budget: {label} FAILED: {exc}")
                rows.append(BudgetRow(label, "-", 0, None, None, None, None, float("nan"), float("nan"),
                                      float("nan"), float("nan"), 0.0, error=str(exc)))
        return rows


def _f(value: float | None, fmt: str) -> str:
    return "–" if value is None or value != value else format(value, fmt)


def budget_table(rows: list[BudgetRow]) -> str:
    header = ["artifact", "runtime", "frames", "peak RSS MB", "RSS load / first / steady MB",
              "model file pages dropped MB", "pipeline FPS",
              "median inference ms", "FPS × inference", "pre+post / inference", "soak MB / 1k frames",
              f"→ {SOAK_FRAMES} frames MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        if r.error:
            lines.append(f"| {r.label} | failed: {r.error} |" + " |" * (len(header) - 2))
            continue
        split = " / ".join(_f(v, ".0f") for v in (r.loaded_rss_mb, r.first_frame_rss_mb, r.steady_rss_mb))
        lines.append("| " + " | ".join([
            r.label, r.runtime.split(" (")[0], str(r.frames), _f(r.peak_rss_mb, ".0f"), split,
            _f(r.released_mb, ".1f"), _f(r.fps, ".2f"),
            _f(r.inference_ms, ".1f"), _f(r.fps_ratio, ".2f"), _f(100 * r.pre_post_share, ".1f") + "%",
            _f(r.soak_mb_per_1000, "+.2f"), _f(r.soak_5000_mb, "+.1f")]) + " |")
    return "\n".join(lines)


def goals_line(rows: list[BudgetRow]) -> str:
    ok = [r for r in rows if not r.error]
    if not ok:
        return "no artifact ran"
    best = min(ok, key=lambda r: r.peak_rss_mb or float("inf"))
    return (f"targets: best peak RSS {best.peak_rss_mb:.0f} MB ({best.label}; goal ≤ {GOAL_PEAK_MB:.0f}), "
            f"FPS × inference ≥ {GOAL_FPS_RATIO} on {sum(r.fps_ratio >= GOAL_FPS_RATIO for r in ok)}/{len(ok)}, "
            f"pre+post ≤ {100 * GOAL_PRE_POST:.0f}% on {sum(r.pre_post_share <= GOAL_PRE_POST for r in ok)}/{len(ok)}, "
            f"soak < {GOAL_SOAK_MB:.0f} MB over {SOAK_FRAMES} frames (extrapolated) on "
            f"{sum(abs(r.soak_5000_mb) < GOAL_SOAK_MB for r in ok)}/{len(ok)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="artifacts, or LABEL=ARTIFACT")
    parser.add_argument("--frames", type=int, default=200, help="frames per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--work", help="keep the video and each run's reports here (default: a temporary folder)")
    args = parser.parse_args(argv)
    models = {}
    for text in args.models:
        label, _, path = text.rpartition("=")
        models[label or Path(path).name] = Path(path)
    rows = measure(models, args.frames, args.warmup, args.threads, Path(args.work) if args.work else None,
                   log=lambda m: print(m, file=sys.stderr))
    print(budget_table(rows))
    print()
    print(goals_line(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n")
    return 0 if all(not r.error for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
