"""Report files: profile.json, frames.csv, profile.md (comparison table), profile.png (plots).

Every file is written atomically, so an interrupted run never leaves half a report.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from segnet_edge.device.atomic import atomic_path, write_text_atomic
from segnet_edge.device.profiler import STAGES, FrameLog, FrameRecord, ProfileReport

REPORT_FILES = ("profile.json", "frames.csv", "profile.md", "profile.png")


def _finite(value):
    """JSON has no NaN: make it null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def report_json(report: ProfileReport) -> str:
    return json.dumps(_finite(report.to_json()), indent=2, sort_keys=False) + "\n"


def frames_csv(records: dict[str, FrameLog | list[FrameRecord]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "frame", "warmup", "start_s", *[f"{s}_ms" for s in STAGES], "rss_mb", "gpu_mem_mb"])
    for model, rows in records.items():
        for r in rows:
            writer.writerow([model, r.index, int(r.warmup), f"{r.start_s:.6f}",
                             *[f"{r.stage_ms(s):.4f}" for s in STAGES], f"{r.rss_mb:.2f}",
                             "" if r.gpu_mem_mb is None else f"{r.gpu_mem_mb:.1f}"])
    return buffer.getvalue()


def model_labels(report: ProfileReport) -> list[str]:
    """Short names for the table: file names, or full paths where two files share a name."""
    names = [Path(m.model).name for m in report.models]
    return [m.model if names.count(n) > 1 else n for n, m in zip(names, report.models)]


def _fmt(value, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def markdown_table(report: ProfileReport) -> str:
    """One row per model: the comparison users read first (like trtexec / benchmark_model summaries)."""
    header = ["model", "backend", "frames", "FPS", "total mean", "total p99", "inference mean",
              "inference p99", "capture", "pre", "post", "render", "write", "RSS load / first / steady MB",
              "RSS peak MB", "RSS growth MB"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, m in zip(model_labels(report), report.models):
        lat = m.latency_ms
        row = [label, m.backend, str(m.frames), _fmt(m.fps, 1), _fmt(lat["total"]["mean"]),
               _fmt(lat["total"]["p99"]), _fmt(lat["inference"]["mean"]), _fmt(lat["inference"]["p99"]),
               _fmt(lat["capture"]["mean"]), _fmt(lat["preprocess"]["mean"]), _fmt(lat["postprocess"]["mean"]),
               _fmt(lat["render"]["mean"]), _fmt(lat["write"]["mean"]), memory_split(m.memory),
               _fmt(_peak(m.memory), 1),
               _fmt(m.memory.get("rss_growth_mb"), 1)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def memory_split(memory: dict) -> str:
    """"load / first / steady": RSS with the model loaded, after its first frame, once the run settled."""
    return " / ".join(_fmt(memory.get(key), 0) for key in ("rss_loaded_mb", "rss_first_frame_mb", "rss_steady_mb"))


def _peak(memory: dict) -> float | None:
    """The process's true peak where the OS keeps one (VmHWM), else the highest per-frame sample."""
    samples = [v for v in (memory.get("rss_hwm_mb"), memory.get("rss_peak_mb")) if v is not None]
    return max(samples) if samples else None


def report_markdown(report: ProfileReport) -> str:
    host = report.host
    text = ["# segnet-edge profile", "",
            f"Host: {host.get('cpu')} ({host.get('cores')} cores, threads={host.get('threads') or 'default'}), "
            f"{host.get('system')}", ""]
    if host.get("jetson"):
        jetson = host["jetson"]
        text += [f"Jetson: {jetson.get('model')}, power mode {jetson.get('power_mode') or 'unknown'}", ""]
    text += ["Latencies in milliseconds, warm-up frames excluded. Stage columns are means; `write` is the outputs "
             "(video file, mask PNGs, JSON lines, display). `total` runs from a frame's read to its last output "
             "written, queueing between the capture, inference and output threads included, so it can exceed the "
             "stages' sum while FPS (throughput) exceeds 1000 / total. RSS (MB) is this process's: after loading the model, "
             "after its first frame, and settled (median of the last frames); the peak is the OS's high-water mark, "
             "load included. Several models in one run share a process, so each later one also holds what the "
             "earlier ones left: for a board's figure, profile one model per run.", "", markdown_table(report)]
    for m in report.models:
        notes = []
        if m.skipped_frames:
            notes.append(f"{m.skipped_frames} unreadable frames skipped")
        if m.dropped_frames:
            notes.append(f"{m.dropped_frames} live frames dropped (keep-latest)")
        if m.reconnects:
            notes.append(f"{m.reconnects} reconnects")
        if m.summary_window:
            notes.append(f"statistics and frames.csv cover the last {m.summary_window} frames")
        if m.ended_by != "end of source":
            notes.append(f"ended by {m.ended_by}")
        if notes:
            text.append(f"- {Path(m.model).name}: {'; '.join(notes)}")
    if report.interrupted:
        text.append(f"- run interrupted by {report.interrupted}")
    return "\n".join(text).rstrip() + "\n"


def write_plot(report: ProfileReport, records: dict[str, FrameLog | list[FrameRecord]], path: Path) -> bool:
    """Latency over frames and a per-stage histogram per model; False when matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    stages = [s for s in STAGES if s != "total"]
    labels = model_labels(report)
    fig, axes = plt.subplots(len(report.models) or 1, 2, figsize=(12, 3.2 * max(1, len(report.models))),
                             squeeze=False)
    for row, (label, model) in enumerate(zip(labels, report.models)):
        rows = [r for r in records.get(model.model, []) if not r.warmup]
        timeline, hist = axes[row]
        x = [r.index for r in rows]
        for stage in (*stages, "total"):
            timeline.plot(x, [r.stage_ms(stage) for r in rows], label=stage, linewidth=1)
        timeline.set(title=f"{label}: latency per frame", xlabel="frame", ylabel="ms")
        for stage in stages:
            values = [r.stage_ms(stage) for r in rows]
            if values:
                hist.hist(values, bins=30, alpha=0.5, label=stage)
        hist.set(title=f"{label}: per-stage histogram", xlabel="ms", ylabel="frames")
        if rows:
            timeline.legend(fontsize=7, ncol=3)
            hist.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return True


def write_reports(out_dir: str | Path, report: ProfileReport, records: dict[str, FrameLog | list[FrameRecord]],
                  plot: bool = True) -> list[Path]:
    """Write the report files into `out_dir`; the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_text_atomic(out / "profile.json", report_json(report)),
               write_text_atomic(out / "frames.csv", frames_csv(records)),
               write_text_atomic(out / "profile.md", report_markdown(report))]
    if plot and write_plot(report, records, out / "profile.png"):
        written.append(out / "profile.png")
    return written
