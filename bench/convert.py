"""Every artifact of one model against the conversion targets, from one `convert_model` run.

    python bench/convert.py [MODEL.h5] [--calib-data SRC] [--eval-data DATASET] [--out DIR] [--formats ...]

With MODEL (the demo's trained model) this is the issue's proof on the full-size
network. Without one it builds a random-weight 360x480 SegNet (`--alpha`, default 1.0)
so sizes, conversion times and op sets can be checked anywhere; its argmax agreement
means little (an untrained network's class probabilities are nearly uniform, so int8
rounding flips them), and the table says so.

Calibration and parity frames default to the real CamVid sample beside the checkout
(../shared/data/camvid-sample): its train split calibrates, its val split (with
labels) is held out.

Targets (convert/options.py Targets): fp32 all-pixel agreement >= 99.9%; fp16 >= 99.5% and int8 >= 98.5% on
the pixels Keras is sure of (top-2 margin >= 0.1), int8 mIoU within 1.0 point; int8 TFLite <= 0.27x the fp32
TFLite size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
CAMVID_SAMPLE = REPO.parent / "shared" / "data" / "camvid-sample"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", help="trained segnet-edge model (default: a random-weight 360x480 SegNet)")
    parser.add_argument("--alpha", type=float, default=1.0, help="width of the random model (default 1.0)")
    parser.add_argument("--calib-data", default=str(CAMVID_SAMPLE), help="calibration source (default: CamVid sample)")
    parser.add_argument("--eval-data", default=str(CAMVID_SAMPLE), help="labelled held-out dataset (val split)")
    parser.add_argument("--out", help="output folder (default: a temporary folder, removed)")
    parser.add_argument("--formats", nargs="+", default=["all"], help="formats (default all)")
    parser.add_argument("--trt-version", default="8.6", help="target TensorRT (default 8.6)")
    return parser.parse_args(argv)


def _random_model(folder: Path, alpha: float) -> Path:
    from segnet_edge._tf import keras
    from segnet_edge.device.metadata import CAMVID_CLASSES, CAMVID_IGNORE_LABEL, CAMVID_PALETTE, ModelMetadata
    from segnet_edge.model_io import save_model
    from segnet_edge.models import ModelConfig, build_model

    keras.utils.set_random_seed(0)
    size = (360, 480)
    model = build_model(ModelConfig(arch="segnet", input_size=size, num_classes=len(CAMVID_CLASSES), alpha=alpha))
    metadata = ModelMetadata(CAMVID_CLASSES, CAMVID_PALETTE, size, ignore_label=CAMVID_IGNORE_LABEL, alpha=alpha)
    return save_model(model, folder / f"segnet_random_a{alpha:g}.h5", metadata)


def table(report, trained: bool = True) -> str:
    """No agreement column for random weights: their near ties make it noise."""
    rows = [("artifact", "size MB", "convert s", "agreement (confident)", "mIoU (delta)", "targets")]
    for a in report.artifacts:
        if a.skipped:
            rows.append((a.format, "", "", "", "", f"skipped: {a.skipped}"))
            continue
        p = a.parity
        agreement = "n/a"
        if p and trained:
            confident = f"{100 * p.confident_agreement:.3f}%" if p.confident_agreement is not None else "n/a"
            agreement = f"{100 * p.agreement:.3f}% ({confident})"
        miou = f"{100 * p.miou:.2f} ({p.miou_delta_points:+.2f})" if p and p.miou is not None else "n/a"
        verdict = "; ".join(f"{c.name} {c.detail} {'ok' if c.passed else 'FAIL'}" for c in a.checks
                            if trained or not (c.name.startswith("agreement") or c.name == "argmax agreement"))
        rows.append((a.format, f"{a.size_bytes / 1e6:.2f}", f"{a.seconds:.1f}", agreement, miou, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(f"{cell:<{w}}" for cell, w in zip(r[:5], widths)) + "  " + r[5] for r in rows)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    from segnet_edge.convert import ConvertOptions, convert_model

    with tempfile.TemporaryDirectory(prefix="bench_convert_") as scratch:
        work = Path(args.out) if args.out else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        model = Path(args.model) if args.model else _random_model(work, args.alpha)
        eval_data = args.eval_data if args.eval_data and Path(args.eval_data).exists() else None
        calib_data = args.calib_data if args.calib_data and Path(args.calib_data).exists() else None
        started = time.perf_counter()
        report = convert_model(model, work / "export", args.formats, calib_data=calib_data, eval_data=eval_data,
                               options=ConvertOptions(trt_version=args.trt_version),
                               log=lambda message: print(f"[{time.perf_counter() - started:6.1f}s] {message}",
                                                         file=sys.stderr, flush=True))
        print(f"model: {model} ({'trained' if args.model else 'RANDOM weights: agreement is not meaningful'})")
        print(f"parity frames: {report.parity_frames}")
        print(table(report, trained=bool(args.model)))
        print(f"overall: {'PASS' if report.passed else 'FAIL'} in {report.seconds:.0f} s"
              + (f"; artifacts in {work / 'export'}" if args.out else ""))
        return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
