"""The benchmark's tables and goals: plain functions of measured numbers (unit-tested, no timing here).

Every ratio is computed from rows of the same run: a row's speed-up is the Keras row's mean latency
(same model, same thread count) over its own, the pooling overhead is the argmax design's mean over
the plain design's in the same runtime.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

# the near-tie threshold of the conversion reports: the bench and `convert` count the same pixels
from segnet_edge.convert.parity import CONFIDENT_MARGIN

#: The issue's goals.
GOAL_INT8_SPEEDUP = 2.0  # fastest int8 artifact vs Keras, full-size SegNet
GOAL_INT8_AGREEMENT = 0.985  # on the pixels Keras is sure of: convert's Targets.int8_confident_agreement
GOAL_POOLING_OVERHEAD = 0.10  # argmax pool + unpool over plain pool + nearest upsample, every runtime

README_BEGIN = "<!-- bench:begin (written by `make bench`; do not edit by hand) -->"
README_END = "<!-- bench:end -->"


@dataclass
class TableRow:
    """One measured row, with what the table derives from it."""

    group: str  # "full" | "demo"
    label: str
    runtime: str
    precision: str
    threads: int
    pooling: str
    mean_ms: float | None
    median_ms: float | None  # what the ratios use: robust to the spikes other processes cause
    p90_ms: float | None
    min_ms: float | None
    fps: float | None
    iterations: int
    peak_rss_mb: float | None
    size_bytes: int | None
    agreement: float | None = None  # argmax agreement with the Keras row, over the run's frames
    confident_agreement: float | None = None  # the same, on pixels Keras does not call near a tie
    miou: float | None = None
    speedup: float | None = None  # Keras median / this median (same group and threads)
    rss_ratio: float | None = None  # this peak RSS / Keras'
    size_ratio: float | None = None  # this file / the Keras .h5
    gops: float | None = None
    peak_share: float | None = None  # gops / this CPU's peak for the row's precision
    error: str | None = None
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # timed rounds, in round order

    def to_json(self) -> dict:
        return asdict(self)



def agreement(reference: dict[int, np.ndarray], labels: dict[int, np.ndarray],
              margins: dict[int, np.ndarray] | None = None, min_margin: float = 0.0) -> float | None:
    """Fraction of pixels with the same class, over the frames both have (with `margins`: only the
    pixels whose reference top-1/top-2 margin is at least `min_margin`)."""
    common = sorted(set(reference) & set(labels) & (set(margins) if margins is not None else set(labels)))
    if not common:
        return None
    same = total = 0
    for i in common:
        keep = np.ones(reference[i].shape, bool) if margins is None else margins[i] >= min_margin
        same += int(np.count_nonzero((reference[i] == labels[i]) & keep))
        total += int(np.count_nonzero(keep))
    return same / total if total else None


def confident_share(margins: dict[int, np.ndarray], min_margin: float = CONFIDENT_MARGIN) -> float | None:
    """Share of the reference's pixels that are not near ties."""
    if not margins:
        return None
    return float(np.mean(np.concatenate([m.ravel() >= min_margin for m in margins.values()])))


def miou(labels: dict[int, np.ndarray], truth: np.ndarray | None, num_classes: int,
         ignore_label: int | None) -> float | None:
    """Mean IoU of a row's label maps against the ground truth (segnet_edge.metrics)."""
    if truth is None or not labels:
        return None
    from segnet_edge.metrics import confusion_matrix, scores

    frames = sorted(i for i in labels if i < len(truth))
    cm = confusion_matrix(truth[frames], np.stack([labels[i] for i in frames]), num_classes, ignore_label)
    return scores(cm).mean_iou


def derive(rows: list[TableRow], keras_rows: dict[tuple[str, int], TableRow], macs: dict[str, int],
           peaks: dict[str, float]) -> None:
    """Fill in ratios to the Keras row and the achieved GOP/s (in place)."""
    from bench.hardware import achieved_gops

    for row in rows:
        if row.median_ms is None:
            continue
        keras = keras_rows.get((row.group, row.threads))
        if keras is not None and keras.median_ms:
            row.speedup = keras.median_ms / row.median_ms
            if keras.peak_rss_mb and row.peak_rss_mb:
                row.rss_ratio = row.peak_rss_mb / keras.peak_rss_mb
            if keras.size_bytes and row.size_bytes:
                row.size_ratio = row.size_bytes / keras.size_bytes
        if row.group in macs:
            row.gops = achieved_gops(macs[row.group], row.median_ms / 1000.0)
            peak = peaks.get(row.precision)
            row.peak_share = row.gops / peak if peak else None


def _f(value: float | None, fmt: str, missing: str = "–") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, fmt)


def _pct(value: float | None, digits: int = 1) -> str:
    return _f(None if value is None else 100 * value, f".{digits}f") + ("%" if value is not None else "")


def markdown_table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A GitHub-markdown table; `align` is one character per column: l or r."""
    align = align or "l" + "r" * (len(headers) - 1)
    rule = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def main_table(rows: list[TableRow], accuracy_note: str = "") -> str:
    headers = ["runtime", "threads", "mean ms", "median ms", "p90 ms", "FPS", "× Keras", "peak RSS MB", "RSS / Keras",
               "file MB", "size / Keras", "agreement", f"agreement, margin ≥ {CONFIDENT_MARGIN:g}", "mIoU", "GOP/s",
               "% of peak"]
    body = []
    for r in rows:
        if r.error:
            body.append([r.label, str(r.threads), "failed: " + r.error[:60]] + [""] * (len(headers) - 3))
            continue
        body.append([r.label, str(r.threads), _f(r.mean_ms, ".1f"), _f(r.median_ms, ".1f"), _f(r.p90_ms, ".1f"),
                     _f(r.fps, ".2f"),
                     _f(r.speedup, ".2f") + ("×" if r.speedup else ""), _f(r.peak_rss_mb, ".0f"),
                     _f(r.rss_ratio, ".2f"), _f(None if r.size_bytes is None else r.size_bytes / 1e6, ".1f"),
                     _f(r.size_ratio, ".2f"), _pct(r.agreement, 2), _pct(r.confident_agreement, 2), _pct(r.miou, 1),
                     _f(r.gops, ".0f"),
                     _pct(r.peak_share, 0)])
    text = markdown_table(headers, body, "lr" + "r" * (len(headers) - 2))
    return text + (f"\n\n{accuracy_note}" if accuracy_note else "")


@dataclass
class PoolingRow:
    runtime: str
    argmax_ms: float | None
    plain_ms: float | None
    tf_argmax_ms: float | None = None  # Keras only
    note: str = ""
    runtime_group: str = ""  # rows of one runtime and precision in other graph forms share it; "" = runtime
    #: median over rounds of (ours / plain) timed back to back in the same round: steadier than the ratio of
    #: medians when other processes slow the machine down for a while
    paired_ratio: float | None = None

    @property
    def group(self) -> str:
        return self.runtime_group or self.runtime

    @property
    def overhead(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio - 1.0
        if not self.argmax_ms or not self.plain_ms:
            return None
        return self.argmax_ms / self.plain_ms - 1.0

    @property
    def within_goal(self) -> bool | None:
        """Overhead at most GOAL_POOLING_OVERHEAD (to the 0.01 % the table prints)."""
        over = self.overhead
        return None if over is None else round(over, 4) <= GOAL_POOLING_OVERHEAD

    @property
    def vs_tf_argmax(self) -> float | None:
        """tf.nn.max_pool_with_argmax + scatter time over ours (> 1: ours is faster)."""
        if not self.argmax_ms or not self.tf_argmax_ms:
            return None
        return self.tf_argmax_ms / self.argmax_ms

    def to_json(self) -> dict:
        return {**asdict(self), "overhead": self.overhead, "vs_tf_argmax": self.vs_tf_argmax}


def paired_ratio(ours_ms: list[float], plain_ms: list[float]) -> float | None:
    """Median of the per-round ratios; None unless both rows have a time for every round."""
    if not ours_ms or len(ours_ms) != len(plain_ms):
        return None
    return float(np.median(np.asarray(ours_ms) / np.asarray(plain_ms)))


def pooling_table(rows: list[PoolingRow]) -> str:
    headers = ["runtime", "argmax pool + unpool (ours) ms", "max pool + nearest upsample ms", "overhead",
               f"≤ {GOAL_POOLING_OVERHEAD:.0%}", "tf.nn.max_pool_with_argmax + scatter ms", "ours faster by"]
    body = []
    for r in rows:
        over = r.overhead
        body.append([r.runtime, _f(r.argmax_ms, ".1f"), _f(r.plain_ms, ".1f"),
                     _f(None if over is None else 100 * over, "+.1f") + ("%" if over is not None else ""),
                     "–" if over is None else ("yes" if r.within_goal else "NO"),
                     _f(r.tf_argmax_ms, ".1f", r.note or "–"), _f(r.vs_tf_argmax, ".2f") + ("×" if r.vs_tf_argmax else "")])
    return markdown_table(headers, body, "lrrrlrr")


def index_memory_table(memory) -> str:
    """Bytes of pooling indices one frame keeps between encoder and decoder (bench.variants.IndexMemory)."""
    rows = [["2-bit window code (the information ours keeps)", f"{memory.two_bit_bytes / 1e6:.2f}", "1.00×"],
            ["int32 ARG_MAX output (what our graph materialises)", f"{memory.int32_bytes / 1e6:.2f}",
             f"{memory.int32_bytes / memory.two_bit_bytes:.0f}×"],
            ["int64 flat indices (tf.nn.max_pool_with_argmax)", f"{memory.int64_bytes / 1e6:.2f}",
             f"{memory.int64_bytes / memory.two_bit_bytes:.0f}×"]]
    return markdown_table(["index representation", "MB per frame", "vs 2-bit"], rows, "lrr")


def jetson_markdown(rows: list[dict], macs: int, efficiency: float, sources: tuple[str, ...]) -> str:
    headers = ["module", "GPU", "power", "sparse INT8 TOPS (GPU + DLA)", "GPU dense INT8 TOPS",
               "GPU dense FP16 TFLOPS", f"FPS int8 @ {efficiency:.0%}", f"FPS int8 2:4 sparse @ {efficiency:.0%}",
               f"FPS fp16 @ {efficiency:.0%}"]
    body = [[r["module"], r["gpu"], r["power"], f"{r['sparse_int8_tops_total']:.0f} "
             f"({r['gpu_sparse_int8_tops']:.0f} + {r['sparse_int8_tops_total'] - r['gpu_sparse_int8_tops']:.0f})",
             f"{r['gpu_dense_int8_tops']:.1f}", f"{r['gpu_dense_fp16_tflops']:.1f}", f"{r['fps_int8']:.0f}",
             f"{r['fps_int8_sparse']:.0f}", f"{r['fps_fp16']:.0f}"] for r in rows]
    text = markdown_table(headers, body, "lllrrrrrr")
    return (text + f"\n\nComputed, not measured: FPS = {efficiency:.0%} × GPU dense peak / (2 × {macs / 1e9:.1f} "
            "GMAC per frame); the DLAs are left out (SegNet's index ops would fall back to the GPU). "
            "Sources: " + "; ".join(sources) + ".")


@dataclass
class Goal:
    name: str
    met: bool | None  # None: could not be measured in this run
    detail: str

    def to_json(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        verdict = "not measured" if self.met is None else ("met" if self.met else "NOT MET")
        return f"- **{verdict}** — {self.name}: {self.detail}"


@dataclass
class Results:
    """Everything a run writes to bench/results.json and docs/benchmarks.md."""

    machine: dict
    settings: dict
    sections: dict[str, str] = field(default_factory=dict)  # title -> markdown
    rows: list[TableRow] = field(default_factory=list)
    pooling: list[PoolingRow] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    extra: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"machine": self.machine, "settings": self.settings, "rows": [r.to_json() for r in self.rows],
                "pooling": [p.to_json() for p in self.pooling], "goals": [g.to_json() for g in self.goals],
                **self.extra}

    def to_markdown(self) -> str:
        parts = ["# segnet-edge benchmark", ""]
        for title, text in self.sections.items():
            parts += [f"## {title}", "", text, ""]
        parts += ["## Goals", "", *[g.line() for g in self.goals], ""]
        return "\n".join(parts)


def readme_summary(results: Results, date: str) -> str:
    """Three lines for the README: where and when, the full-size int8 headline, the goals."""
    machine = results.machine
    lines = [f"Latest `make bench` on {machine['cpu']} ({machine['cores']} cores, {machine['peak']['simd']}), {date}; "
             "the full report: [docs/benchmarks.md](docs/benchmarks.md)."]
    int8 = [r for r in results.rows if r.group == "full" and r.precision == "int8" and r.pooling == "argmax"
            and r.speedup and r.median_ms]
    if int8:
        best = max(int8, key=lambda r: r.speedup)
        lines.append(f"Full-size SegNet: {best.label} at {best.threads} thread(s) {best.median_ms:.0f} ms per frame "
                     f"(median), {best.speedup:.2f}× Keras, peak RSS {best.peak_rss_mb:.0f} MB.")
    missed = [g.name for g in results.goals if g.met is False]
    met = sum(1 for g in results.goals if g.met)
    lines.append(f"Goals met: {met} of {len(results.goals)}" + (f"; not met: {'; '.join(missed)}." if missed else "."))
    return "\n\n".join(lines)


def update_readme(readme: str, block: str) -> str:
    """Replace the text between the bench markers (or append a section with them)."""
    section = f"{README_BEGIN}\n{block.strip()}\n{README_END}"
    if README_BEGIN in readme and README_END in readme:
        head, rest = readme.split(README_BEGIN, 1)
        _, tail = rest.split(README_END, 1)
        return head + section + tail
    return readme.rstrip("\n") + "\n\n## Benchmark (`make bench`)\n\n" + section + "\n"
