"""What pruning and int8 cost in accuracy and buy in size, on held-out synthetic scenes, from one run.

    python bench/optimize.py [--model BEST.h5 --data DIR] [--size 64x96] [--count 160] [--epochs 12] ...

Without --model it synthesises a dataset and trains a small SegNet (the demo's
architecture, smaller input), then makes every variant with the project's own code
(segnet_edge.optimize.prune / quantize, the shared calibration set, the TFLite
converter of segnet_edge.convert) and scores each on the `test` split, which neither
training, fine-tuning nor calibration saw:

    float | pruned 50% | pruned 2:4 | PTQ int8 | QAT int8 | pruned 50% + QAT int8

Columns: held-out mIoU, conv-weight sparsity (exact zeros in the artifact's conv
kernels) and gzip size. Goals, checked at the end:
- each int8 variant within 1.0 mIoU point of float;
- pruned 50% + int8 at least 8x smaller (gzip) than the float .h5 (gzip; raw beside it).

Float variants run in Keras; int8 variants run as .tflite files in the LiteRT
interpreter, as the board runs them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from segnet_edge.device.metadata import ModelMetadata

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

GOAL_MIOU_POINTS = 1.0
GOAL_SIZE_RATIO = 8.0


@dataclass
class Row:
    variant: str
    artifact: str
    miou: float
    sparsity: float
    raw: int
    gzip: int
    seconds: float
    weight_bits: float | None = None  # order-0 entropy of the int8 conv weights, bits per weight
    weight_count: int | None = None  # conv weights in the artifact


def _int8_weight_entropy(content: bytes) -> tuple[float, int]:
    """(bits per weight an ideal order-0 coder needs for the int8 conv kernels, their count)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=content)
    interpreter.allocate_tensors()
    weights = [interpreter.get_tensor(op["inputs"][1]).ravel() for op in interpreter._get_ops_details()
               if op["op_name"] == "CONV_2D"]
    values = np.concatenate(weights).astype(np.int16)
    p = np.bincount(values + 128, minlength=256) / values.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum()), int(values.size)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    from segnet_edge.device.cli_core import parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="trained float segnet-edge model (default: train one)")
    parser.add_argument("--data", help="dataset with train/val/test splits (default: synthesise one)")
    parser.add_argument("--work", help="folder for every file (default: a temporary folder, removed)")
    parser.add_argument("--size", type=parse_size, default=(64, 96), metavar="HxW", help="input size (default 64x96)")
    parser.add_argument("--alpha", type=float, default=0.25, help="SegNet width multiplier (default 0.25, the demo's)")
    parser.add_argument("--count", type=int, default=160, help="training scenes to synthesise (default 160)")
    parser.add_argument("--test-count", type=int, default=48, help="held-out test scenes (default 48)")
    parser.add_argument("--epochs", type=int, default=24,
                        help="float training epochs, cosine-decayed so the baseline is settled (default 24)")
    parser.add_argument("--prune-epochs", type=int, default=4, help="pruning fine-tune epochs (default 4)")
    parser.add_argument("--prune-lr", type=float, default=2e-3,
                        help="pruning fine-tune learning rate, cosine-decayed (default 2e-3)")
    parser.add_argument("--qat-epochs", type=int, default=1, help="QAT epochs (default 1)")
    parser.add_argument("--qat-lr", type=float, default=1e-4, help="QAT learning rate, cosine-decayed (default 1e-4)")
    parser.add_argument("--calib-count", type=int, default=64, help="PTQ calibration frames (default 64)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the table as JSON here")
    return parser.parse_args(argv)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _prepare(args, work: Path) -> tuple[Path, Path]:
    """(dataset, float model): given, or synthesised and trained here."""
    data = Path(args.data) if args.data else work / "data"
    if not args.data:
        from segnet_edge.data.synth import SynthConfig, write_synth_dataset

        _log(f"synthesising {args.count} training scenes at {args.size[0]}x{args.size[1]}")
        write_synth_dataset(data, SynthConfig(count=args.count, size=tuple(args.size), seed=args.seed,
                                              val_count=max(8, args.count // 8), test_count=args.test_count),
                            progress=False)
    if args.model:
        return data, Path(args.model)
    from segnet_edge.train import TrainConfig, train

    _log(f"training SegNet alpha {args.alpha} for {args.epochs} epochs")
    result = train(TrainConfig(data=str(data), out=str(work / "train"), arch="segnet", alpha=args.alpha,
                               input_size=tuple(args.size), epochs=args.epochs, batch_size=args.batch_size,
                               optimizer="adam", lr=0.003, lr_schedule="cosine", weight_decay=0.0, seed=args.seed,
                               verbose=0))
    return data, Path(result.best_path)


def _keras_row(variant: str, path: Path, test, info, norm, started: float) -> Row:
    from segnet_edge.model_io import load_model
    from segnet_edge.optimize.report import file_size, sparsity_summary
    from segnet_edge.train import evaluate_miou

    model = load_model(path)
    size = file_size(path)
    return Row(variant, path.name, evaluate_miou(model, test, info, norm), sparsity_summary(model).kernel_sparsity,
               size.raw, size.gzip, time.perf_counter() - started)


def _tflite_miou(path: Path, test, info, metadata: ModelMetadata) -> float:
    """Run the .tflite on every held-out frame as the board does, through its LiteRT backend (prepare_input,
    infer, to_labels). The bench's flatbuffer carries no metadata (its size is measured as converted), so the
    backend gets the float model's metadata with the flatbuffer's own input and output quantization."""
    from segnet_edge.convert.tflite import inspect
    from segnet_edge.device.backends.base import BackendOptions
    from segnet_edge.device.backends.litert import LiteRTBackend
    from segnet_edge.metrics import confusion_matrix, scores

    graph = inspect(path.read_bytes())
    metadata = replace(metadata, format="tflite", input_quantization=graph.input_quantization,
                       output_quantization=graph.output_quantization)
    with LiteRTBackend(path, metadata, BackendOptions(threads=2)) as backend:
        predictions = [backend.to_labels(backend.infer(backend.prepare_input(frame)))[0] for frame in test.images]
    cm = confusion_matrix(test.labels, np.stack(predictions), info.num_classes, info.ignore_label)
    return scores(cm).mean_iou


def _tflite_row(variant: str, model, path: Path, test, info, metadata: ModelMetadata, started: float,
                representative=None, qat: bool = False) -> Row:
    from segnet_edge.convert.tflite import convert_keras
    from segnet_edge.optimize.report import file_size, tflite_int8_weight_sparsity, tflite_ops

    content = convert_keras(model, "int8", representative=representative, io_dtype="int8", qat=qat)
    path.write_bytes(content)
    floating = sorted({op.name for op in tflite_ops(content) if op.is_float})
    if floating:
        _log(f"{variant}: ops left in float: {', '.join(floating)}")
    size = file_size(path)
    return Row(variant, path.name, _tflite_miou(path, test, info, metadata), tflite_int8_weight_sparsity(content),
               size.raw, size.gzip, time.perf_counter() - started, *_int8_weight_entropy(content))


def run(args: argparse.Namespace, work: Path) -> list[Row]:
    from segnet_edge.calibration.representative import CalibrationRecipe, build_calibration_set
    from segnet_edge.calibration.tflite import representative_dataset
    from segnet_edge.data.layout import find_samples
    from segnet_edge.data.loader import load_samples
    from segnet_edge.model_io import load_model, read_metadata
    from segnet_edge.models import with_unpool_mode
    from segnet_edge.optimize.config import PruneConfig, QATConfig
    from segnet_edge.optimize.prune import prune
    from segnet_edge.optimize.quantize import quantize
    from segnet_edge.train import prepare_data

    data, float_path = _prepare(args, work)
    metadata = read_metadata(float_path)
    norm, size = metadata.normalization, metadata.input_size
    info = prepare_data(str(data), size, verbose=0, class_balancing=False).info
    test = load_samples(find_samples(data, "test"), size, info)
    _log(f"held-out: {len(test)} test frames at {size[0]}x{size[1]}")
    rows: list[Row] = []
    fine = {"data": str(data), "batch_size": args.batch_size, "seed": args.seed, "verbose": 0}

    started = time.perf_counter()
    rows.append(_keras_row("float", float_path, test, info, norm, started))

    for variant, extra in (("pruned 50%", {"sparsity": 0.5}), ("pruned 2:4", {"structured": "2:4"})):
        _log(f"{variant}: pruning + {args.prune_epochs} fine-tuning epochs")
        started = time.perf_counter()
        out = work / f"pruned_{variant.split()[-1].replace(':', 'of').replace('%', '')}.h5"
        report = prune(PruneConfig(model=str(float_path), out=str(out), epochs=args.prune_epochs, lr=args.prune_lr,
                                   **extra, **fine))
        if not report.target_reached:
            raise SystemExit(f"{variant}: target not reached: {report.to_json()['achieved_sparsity']}, "
                             f"pattern violations {report.pattern_violations}")
        rows.append(_keras_row(variant, out, test, info, norm, started))
    pruned_50 = work / "pruned_50.h5"

    _log("PTQ int8: full-integer TFLite calibrated on the shared representative set")
    started = time.perf_counter()
    calib = build_calibration_set(CalibrationRecipe(source=str(data), size=tuple(size), count=args.calib_count,
                                                    seed=args.seed, split="train", holdout=0), allow_fewer=True)
    ptq_model = with_unpool_mode(load_model(float_path), "select")  # "onehot" is not int8-quantizable
    rows.append(_tflite_row("PTQ int8", ptq_model, work / "ptq_int8.tflite", test, info, metadata, started,
                            representative=representative_dataset(calib, norm)))

    for variant, source in (("QAT int8", float_path), ("pruned 50% + QAT int8", pruned_50)):
        _log(f"{variant}: {args.qat_epochs} QAT epochs, int8 TFLite from the QAT ranges (no calibration)")
        started = time.perf_counter()
        out = work / ("qat.h5" if source == float_path else "pruned_50_qat.h5")
        report = quantize(QATConfig(model=str(source), out=str(out), epochs=args.qat_epochs, lr=args.qat_lr, **fine))
        if report.preserve_sparsity and not report.sparsity_kept:
            raise SystemExit(f"{variant}: prune-preserving QAT lost zeros")
        rows.append(_tflite_row(variant, load_model(out), out.with_suffix(".tflite"), test, info, metadata, started,
                                qat=True))
    return rows


def format_table(rows: list[Row]) -> tuple[str, bool]:
    """The table, then the goals with the measured ratios; returns (text, all goals met)."""
    base = rows[0]
    lines = [f"{'variant':<24}{'held-out mIoU':>14}{'vs float':>10}{'sparsity':>10}{'gzip':>12}{'raw':>12}"
             f"{'gzip / float':>14}{'time':>8}"]
    for row in rows:
        lines.append(f"{row.variant:<24}{100 * row.miou:>13.2f} {100 * (row.miou - base.miou):>+9.2f}"
                     f"{100 * row.sparsity:>9.1f}%{row.gzip / 1024:>9.0f} KiB{row.raw / 1024:>8.0f} KiB"
                     f"{base.gzip / row.gzip:>13.2f}x{row.seconds:>7.0f}s")
    ok = True
    lines.append("")
    for row in rows:
        if "int8" in row.variant:
            gap = 100 * (base.miou - row.miou)
            met = gap <= GOAL_MIOU_POINTS
            ok &= met
            lines.append(f"goal {row.variant:<22} within {GOAL_MIOU_POINTS:.1f} mIoU point of float: "
                         f"{'met' if met else 'MISSED'} ({-gap:+.2f} points)")
    combined = rows[-1]
    ratio, raw_ratio = base.gzip / combined.gzip, base.raw / combined.gzip
    met = ratio >= GOAL_SIZE_RATIO
    ok &= met
    lines.append(f"goal {combined.variant} >= {GOAL_SIZE_RATIO:.0f}x smaller than the float .h5: "
                 f"{'met' if met else 'MISSED'} ({ratio:.2f}x gzip vs gzip; {raw_ratio:.2f}x vs the raw .h5)")
    if combined.weight_bits:
        # gzip of the float .h5 in bits per conv weight, against the entropy floor of the int8 weights
        weights = combined.weight_count
        float_bits = 8 * base.gzip / weights
        lines.append(f"     its int8 conv weights carry {combined.weight_bits:.2f} bits each (order-0 entropy; "
                     f"gzip stores {8 * combined.gzip / weights:.2f}); the float .h5 gzips to {float_bits:.1f} bits "
                     f"per weight, so no order-0 coder gets past {float_bits / combined.weight_bits:.1f}x here")
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_optimize_") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = run(args, work)
    text, ok = format_table(rows)
    print(text)
    print(f"\n{time.perf_counter() - began:.0f} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [asdict(r) for r in rows], "goals_met": ok}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
