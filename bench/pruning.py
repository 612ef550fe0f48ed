"""What pruning buys in speed and costs in accuracy: dense vs channel-pruned (30%, 50%) vs 2:4, from one run.

    python bench/pruning.py section [--model BEST.h5 --data DIR] [--size 64x96] [--epochs 2] [--rounds 20]
    python bench/pruning.py targets [--size 352x480] [--rounds 5]
    python bench/pruning.py criteria [--arch segnet-basic] [--size 64x96] [--epochs 2]

`section` (what `make bench` would add as its pruning section; `pruning_section` is the function):
a trained model (given, else a small SegNet trained here on synthetic scenes by the demo's recipe),
pruned by the project's own code (segnet_edge.optimize: `prune --channels 0.3`, `--channels 0.5`,
`--structured 2:4`), each fine-tuned for the same epochs, each converted to TFLite int8 by `convert`'s
own call and timed through the board's LiteRT backend at 2 threads in interleaved rounds (bench/measure.py),
so background load hits every row alike; MACs, parameters, file sizes, latency ratios to the dense model,
held-out mIoU (Keras float and the int8 TFLite), and the Jetson Orin FPS the MACs predict (bench/hardware.py).

`targets`: the issue's speed targets on the full-size SegNet with random weights (dense kernels time the
same whatever their values): MACs and TFLite int8 latency at 50% of channels vs dense.

`criteria`: which filter ranking keeps more mIoU (L1 of the kernel or batch norm |gamma|), on a small
model trained here: mIoU right after the cut and after fine-tuning, for each criterion.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout; also what the spawned workers import from

#: The issue's targets at 50% of channels.
GOAL_MAC_RATIO = 0.3
GOAL_SPEEDUP = 2.0
GOAL_MIOU_POINTS = 1.5
THREADS = 2


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class PruneRow:
    variant: str
    model: str
    macs: int
    params: int
    h5_bytes: int
    tflite: str | None = None
    tflite_bytes: int | None = None
    median_ms: float | None = None
    speedup: float | None = None  # dense median / this row's median (same interleaved rounds)
    miou_keras: float | None = None
    miou_int8: float | None = None
    jetson_fps: dict[str, float] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def _row(variant: str, path: Path, note: str = "") -> PruneRow:
    from segnet_edge.model_io import load_model
    from segnet_edge.models import count_macs

    model = load_model(path)
    return PruneRow(variant, str(path), count_macs(model), int(model.count_params()), path.stat().st_size, note=note)


def _convert_int8(rows: list[PruneRow], work: Path, calib) -> None:
    """TFLite int8 by `segnet-edge convert`'s own code (bench/artifacts.convert_all), calibrated on one set."""
    from bench.artifacts import convert_all

    for row in rows:
        done = work / f"export_{Path(row.model).stem}" / "model_int8.tflite"
        if done.is_file() and done.stat().st_mtime > Path(row.model).stat().st_mtime:  # --work from an earlier run
            row.tflite, row.tflite_bytes = str(done), done.stat().st_size
            continue
        started = time.perf_counter()
        report = convert_all(Path(row.model), work / f"export_{Path(row.model).stem}", calib, _log,
                             formats=("tflite-int8",))
        artifact = next(a for a in report.artifacts if a.format == "tflite-int8")
        if artifact.file:
            row.tflite = str(Path(report.out_dir) / artifact.file)
            row.tflite_bytes = Path(row.tflite).stat().st_size
        _log(f"{row.variant}: TFLite int8 in {time.perf_counter() - started:.0f} s")


def _time(rows: list[PruneRow], frames: np.ndarray, work: Path, rounds: int, warmup: int = 1) -> dict:
    """Interleaved rounds at THREADS threads through the board's LiteRT backend; labels of every frame."""
    from bench.artifacts import runtime_and_precision
    from bench.measure import RowSpec, WorkerPool

    specs = [RowSpec(f"prune/{i}", "prune", row.variant, *runtime_and_precision("tflite-int8"), THREADS, row.tflite)
             for i, row in enumerate(rows) if row.tflite]
    with WorkerPool(specs, frames, work, _log) as pool:
        pool.measure(rounds, warmup, lambda r, s, t: _log(f"round {r + 1}/{t}: {s:.1f} s"))
    results = {spec.label: pool.results[spec.key] for spec in specs}
    dense = results.get(rows[0].variant)
    for row in rows:
        result = results.get(row.variant)
        if result is None or not result.latencies_s:
            continue
        row.median_ms = 1000.0 * float(np.median(result.latencies_s))
        if dense is not None and dense.latencies_s:
            # per round: dense / this (timed back to back), then the median over rounds
            pairs = np.asarray(dense.latencies_s) / np.asarray(result.latencies_s)
            row.speedup = float(np.median(pairs))
    return results


def _jetson(rows: list[PruneRow]) -> None:
    from bench.hardware import DEFAULT_JETSON_EFFICIENCY, jetson_table

    for row in rows:  # 2:4 runs on the sparse tensor cores: twice the dense int8 peak
        key = "fps_int8_sparse" if row.variant == "2:4" else "fps_int8"
        row.jetson_fps = {r["module"]: round(float(r[key]), 1) for r in jetson_table(row.macs, DEFAULT_JETSON_EFFICIENCY)}


def table(rows: list[PruneRow]) -> str:
    """Markdown: each row against the first (dense)."""
    base = rows[0]
    jetson_keys = list(base.jetson_fps)[:2]
    head = ["variant", "MACs", "× dense", "params", ".h5", "TFLite int8", "int8 ms (2 thr)", "speed-up",
            "mIoU Keras", "mIoU int8", *[f"{k} int8 FPS (paper)" for k in jetson_keys]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def pct(v: float | None) -> str:
        return "–" if v is None else f"{100 * v:.2f}"

    for r in rows:
        cells = [r.variant + (f" ({r.note})" if r.note else ""), f"{r.macs / 1e6:,.0f} M", f"{r.macs / base.macs:.3f}",
                 f"{r.params:,}", f"{r.h5_bytes / 1024:,.0f} KiB",
                 "–" if r.tflite_bytes is None else f"{r.tflite_bytes / 1024:,.0f} KiB",
                 "–" if r.median_ms is None else f"{r.median_ms:.1f}",
                 "–" if r.speedup is None else f"{r.speedup:.2f}×", pct(r.miou_keras), pct(r.miou_int8),
                 *[f"{r.jetson_fps.get(k, 0):.0f}" for k in jetson_keys]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(rows: list[PruneRow]) -> list[str]:
    """The issue's 50%-of-channels targets, met or missed, with the measured numbers."""
    base = rows[0]
    half = next((r for r in rows if r.variant.startswith("channels 50%")), None)
    if half is None:
        return []
    out = [f"MACs ≤ {GOAL_MAC_RATIO}× dense: {'met' if half.macs / base.macs <= GOAL_MAC_RATIO else 'MISSED'} "
           f"({half.macs / base.macs:.3f}×)"]
    if half.speedup is not None:
        out.append(f"TFLite int8 ≥ {GOAL_SPEEDUP:g}× faster: {'met' if half.speedup >= GOAL_SPEEDUP else 'MISSED'} "
                   f"({half.speedup:.2f}×, median of per-round ratios at {THREADS} threads)")
    if half.miou_keras is not None and base.miou_keras is not None:
        gap = 100 * (base.miou_keras - half.miou_keras)
        out.append(f"held-out mIoU within {GOAL_MIOU_POINTS} points: {'met' if gap <= GOAL_MIOU_POINTS else 'MISSED'} "
                   f"({-gap:+.2f} points after fine-tuning)")
    return out


def _held_out(data: Path, size: tuple[int, int]):
    from segnet_edge.data.layout import find_samples
    from segnet_edge.data.loader import load_samples
    from segnet_edge.train import prepare_data

    info = prepare_data(str(data), size, verbose=0, class_balancing=False).info
    return load_samples(find_samples(data, "test"), size, info), info


def pruning_section(model: Path, data: Path, work: Path, ratios=(0.3, 0.5), structured: bool = True,
                    epochs: int = 2, rounds: int = 20, frames: int = 8, calib_frames: int = 16,
                    batch_size: int = 8, lr: float = 1e-3) -> tuple[list[PruneRow], str]:
    """The bench's pruning section on a trained model and its dataset (with a test split): rows and markdown."""
    from bench.artifacts import calibration_set
    from segnet_edge.device.preprocess import normalize
    from segnet_edge.metrics import confusion_matrix, scores
    from segnet_edge.model_io import load_model, read_metadata
    from segnet_edge.optimize.channel_prune import prune_channels
    from segnet_edge.optimize.config import PruneConfig
    from segnet_edge.optimize.prune import prune
    from segnet_edge.train import evaluate_miou

    metadata = read_metadata(model)
    size = tuple(metadata.input_size)
    fine = {"data": str(data), "batch_size": batch_size, "epochs": epochs, "lr": lr, "verbose": 0}
    rows = [_row("dense", model)]
    for ratio in ratios:
        started = time.perf_counter()
        out = work / f"channels_{round(100 * ratio)}.h5"
        report = prune_channels(PruneConfig(model=str(model), out=str(out), channels=ratio, **fine))
        rows.append(_row(f"channels {ratio:.0%}", out, note=f"{epochs} ep fine-tune"))
        _log(f"channels {ratio:.0%}: MACs {report.mac_ratio:.3f}x, val mIoU {100 * report.miou_before:.2f} -> "
             f"{100 * report.miou_pruned:.2f} cut -> {100 * report.miou_after:.2f} ({time.perf_counter() - started:.0f} s)")
    if structured:
        out = work / "pruned_2of4.h5"
        prune(PruneConfig(model=str(model), out=str(out), structured="2:4", **fine))
        rows.append(_row("2:4", out, note="dense kernels on CPU"))
    test, info = _held_out(data, size)
    for row in rows:
        row.miou_keras = float(evaluate_miou(load_model(row.model), test, info, metadata.normalization))
    calib = calibration_set(data, size, calib_frames)
    _convert_int8(rows, work, calib)
    inputs = normalize(test.images[:frames], metadata.normalization).astype(np.float32)
    results = _time(rows, inputs, work, rounds)
    for row in rows:
        result = results.get(row.variant)
        if result is not None and result.labels:
            predictions = np.stack([result.labels[i] for i in sorted(result.labels)])
            cm = confusion_matrix(test.labels[:len(predictions)], predictions, info.num_classes, info.ignore_label)
            row.miou_int8 = float(scores(cm).mean_iou)
    _jetson(rows)
    note = (f"{metadata.arch} alpha {metadata.alpha:g} at {size[0]}×{size[1]}; each pruned variant fine-tuned "
            f"{epochs} epochs (lr {lr:g}, cosine); mIoU on the held-out test split ({len(test)} frames Keras, "
            f"first {len(inputs)} int8); TFLite int8 calibrated on {calib_frames} training frames; "
            f"{rounds} interleaved timed rounds at {THREADS} threads, speed-up = median over rounds of dense / row. "
            "Jetson FPS: MACs over published int8 peaks at the bench's efficiency (bench/hardware.py).")
    text = table(rows) + "\n\n" + note + "\n\n" + "\n".join(f"- {g}" for g in goals(rows))
    return rows, text


def speed_targets(work: Path, size: tuple[int, int] = (352, 480), ratios=(0.5,), rounds: int = 5,
                  calib_frames: int = 2, frames: int = 2) -> tuple[list[PruneRow], str]:
    """Full-size SegNet, random weights: MACs and TFLite int8 latency of channel pruning vs dense (no fine-tune:
    dense kernels time the same whatever their values)."""
    from bench.artifacts import CAMVID_SAMPLE, calibration_set, full_size_model, load_frames
    from segnet_edge.model_io import load_model, read_metadata, save_model
    from segnet_edge.optimize.channels import apply_plan, channel_graph, plan_pruning

    dense = full_size_model(work, size, 1.0)
    metadata = read_metadata(dense)
    model = load_model(dense)
    graph = channel_graph(model)
    rows = [_row("dense", dense)]
    for ratio in ratios:
        plan = plan_pruning(model, ratio, graph=graph, multiple=4)
        widths = plan.widths()
        pruned = apply_plan(model, plan, graph)
        out = work / f"segnet_channels_{round(100 * ratio)}.h5"
        from dataclasses import replace

        save_model(pruned, out, replace(metadata, widths=tuple((k, widths[k]) for k in widths)))
        rows.append(_row(f"channels {ratio:.0%}", out, note="random weights, no fine-tune"))
    calib = calibration_set(CAMVID_SAMPLE, size, calib_frames)
    _convert_int8(rows, work, calib)
    inputs = load_frames(CAMVID_SAMPLE, "val", size, frames).inputs
    _time(rows, inputs, work, rounds)
    _jetson(rows)
    note = (f"Full-size SegNet {size[0]}×{size[1]}, random weights; TFLite int8 ({calib_frames} calibration frames); "
            f"{rounds} interleaved timed rounds at {THREADS} threads.")
    return rows, table(rows) + "\n\n" + note + "\n\n" + "\n".join(f"- {g}" for g in goals(rows))


def channel_pruned_macs(model, ratio: float = 0.5, multiple: int = 4) -> int:
    """MACs per frame of `model` with `ratio` of every coupled group's channels removed (the widths only:
    no weights needed, so the full-size network's count is cheap)."""
    from dataclasses import replace

    from segnet_edge.models import ModelConfig, build_model, count_macs
    from segnet_edge.optimize.channels import channel_groups, kept_count

    widths = {conv: kept_count(g.width, ratio, multiple) for g in channel_groups(model) for conv in g.convs}
    arch = "segnet" if model.name == "segnet" else "segnet-basic"
    config = ModelConfig(arch, tuple(model.input_shape[1:3]), int(model.output_shape[-1]))
    return count_macs(build_model(replace(config, widths=widths)))


def jetson_pruned_lines(macs: int, pruned_macs: int, ratio: float, efficiency: float) -> str:
    """The Jetson section's lines for the channel-pruned model next to the dense one (computed from MACs)."""
    from bench.hardware import jetson_table

    dense, pruned = jetson_table(macs, efficiency), jetson_table(pruned_macs, efficiency)
    return (f"Channel-pruned {ratio:.0%} (`prune --channels {ratio:g}`): {pruned_macs / 1e9:.1f} GMAC per frame "
            f"({pruned_macs / macs:.2f}× dense), so int8 FPS at the same efficiency: "
            + "; ".join(f"{d['module']} {d['fps_int8']:.0f} → {p['fps_int8']:.0f}" for d, p in zip(dense, pruned))
            + ".")


def compare_criteria(model: Path, data: Path, work: Path, ratio: float = 0.5, epochs: int = 1,
                     batch_size: int = 8, lr: float = 1e-3) -> list[dict]:
    """mIoU of the model, right after the cut and after fine-tuning, for each ranking criterion."""
    from segnet_edge.optimize.channel_prune import prune_channels
    from segnet_edge.optimize.channels import CRITERIA
    from segnet_edge.optimize.config import PruneConfig

    found = []
    for criterion in CRITERIA:
        report = prune_channels(PruneConfig(model=str(model), data=str(data), out=str(work / f"crit_{criterion}.h5"),
                                            channels=ratio, criterion=criterion, epochs=epochs,
                                            batch_size=batch_size, lr=lr, verbose=0))
        found.append({"criterion": criterion, "ratio": ratio, "epochs": epochs, "miou_before": report.miou_before,
                      "miou_cut": report.miou_pruned, "miou_finetuned": report.miou_after})
        _log(f"{criterion}: val mIoU {100 * report.miou_before:.2f} -> cut {100 * report.miou_pruned:.2f} -> "
             f"fine-tuned {100 * report.miou_after:.2f}")
    return found


def _train_small(work: Path, arch: str, size: tuple[int, int], alpha: float, epochs: int, count: int,
                 seed: int = 0) -> tuple[Path, Path]:
    """Synthetic scenes and a small model trained on them (the demo's optimiser and schedule)."""
    from segnet_edge.data.synth import SynthConfig, write_synth_dataset
    from segnet_edge.train import TrainConfig, train

    data = work / "data"
    if not (data / "train.txt").is_file():
        write_synth_dataset(data, SynthConfig(count=count, size=tuple(size), seed=seed, val_count=max(8, count // 6),
                                              test_count=max(8, count // 6)), progress=False)
    _log(f"training {arch} alpha {alpha:g} at {size[0]}x{size[1]} for {epochs} epochs on {count} scenes")
    result = train(TrainConfig(data=str(data), out=str(work / f"train_{arch}"), arch=arch, alpha=alpha,
                               input_size=tuple(size), epochs=epochs, batch_size=8, optimizer="adam", lr=0.002,
                               lr_schedule="cosine", class_balancing=False, seed=seed, verbose=0))
    return Path(result.best_path), data


def main(argv: list[str] | None = None) -> int:
    from segnet_edge.device.cli_core import parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("section", "targets", "criteria"))
    parser.add_argument("--model", help="trained float segnet-edge model (default: train a small one)")
    parser.add_argument("--data", help="its dataset, with a test split")
    parser.add_argument("--arch", default="segnet")
    parser.add_argument("--alpha", type=float, default=0.25)
    parser.add_argument("--size", type=parse_size, default=None, metavar="HxW",
                        help="input size (default 64x96; targets: 352x480)")
    parser.add_argument("--count", type=int, default=96, help="synthetic training scenes when training here")
    parser.add_argument("--train-epochs", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs after pruning")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5], help="targets: channel ratios to time")
    parser.add_argument("--work", help="keep files here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_pruning_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.what == "targets":
            rows, text = speed_targets(work, args.size or (352, 480), ratios=tuple(args.ratios), rounds=args.rounds)
            payload = [r.to_json() for r in rows]
        else:
            size = args.size or (64, 96)
            if args.model:
                model, data = Path(args.model), Path(args.data)
            else:
                model, data = _train_small(work, args.arch, size, args.alpha, args.train_epochs, args.count)
            if args.what == "criteria":
                payload = compare_criteria(model, data, work, epochs=args.epochs)
                text = "\n".join(f"{r['criterion']}: val mIoU {100 * r['miou_before']:.2f} -> cut "
                                 f"{100 * r['miou_cut']:.2f} -> {r['epochs']} ep fine-tuned "
                                 f"{100 * r['miou_finetuned']:.2f}" for r in payload)
            else:
                rows, text = pruning_section(model, data, work, epochs=args.epochs, rounds=args.rounds)
                payload = [r.to_json() for r in rows]
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
