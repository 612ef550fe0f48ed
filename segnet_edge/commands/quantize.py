"""`segnet-edge quantize`: argument parsing for segnet_edge.optimize.quantize.quantize."""

from __future__ import annotations

import argparse
import sys

from segnet_edge.cli_types import positive_float, positive_int

HELP = ("quantization-aware training (tfmot int8, custom layers included; prune-preserving on pruned models): "
        "writes a QAT .h5 that converts to int8 without calibration")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segnet_edge.optimize.config import (
        LR_SCHEDULES,
        OPTIMIZERS,
        PRESERVE_SPARSITY,
        UNPOOL_MODES,
        QATConfig,
    )

    d = QATConfig()
    parser.add_argument("model", metavar="MODEL", help="trained (optionally pruned) float segnet-edge model")
    parser.add_argument("--data", required=True, help="dataset to fine-tune and validate on (the training data)")
    parser.add_argument("--qat", action="store_true",
                        help="quantization-aware training (required: post-training int8 is `convert` with a "
                             "calibration set)")
    parser.add_argument("--out", default=d.out, help=f"QAT model file, .h5 (default {d.out}); "
                        "the report goes beside it as <name>.quantize.json")
    parser.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"QAT epochs (default {d.epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    parser.add_argument("--lr", type=positive_float, default=d.lr, help=f"learning rate (default {d.lr})")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                        help=f"learning-rate decay over QAT (default {d.lr_schedule})")
    parser.add_argument("--preserve-sparsity", choices=PRESERVE_SPARSITY, default=d.preserve_sparsity,
                        help="prune-preserving QAT: auto (default) = when the model has zero weights")
    parser.add_argument("--unpool-mode", choices=UNPOOL_MODES, default=d.unpool_mode,
                        help="unpooling form of the QAT model (default select: the one TFLite keeps int8)")
    parser.add_argument("--classes", default=d.classes, help="class names/palette JSON (default: the dataset's)")
    parser.add_argument("--ignore-label", type=int, default=d.ignore_label, help="label value to ignore (default: the dataset's)")
    parser.add_argument("--val-split", default=d.val_split)
    parser.add_argument("--on-bad-sample", choices=("fail", "skip"), default=d.on_bad_sample)
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--unsafe-load", action="store_true", help="allow Lambda/unknown layers (trusted files only)")
    parser.add_argument("--quiet", dest="verbose", action="store_const", const=0, default=d.verbose)


def run(args: argparse.Namespace) -> int:
    from segnet_edge.device.errors import UsageError
    from segnet_edge.model_io import read_metadata
    from segnet_edge.optimize.config import QATConfig

    if not args.qat:
        raise UsageError("only quantization-aware training is done here: add --qat (post-training int8 is "
                         "`segnet-edge convert` with a `segnet-edge calibrate` set)")
    fields = QATConfig.__dataclass_fields__
    config = QATConfig(**{k: v for k, v in vars(args).items() if k in fields})
    config.validate()
    read_metadata(config.model)  # a missing or foreign model fails here, before TensorFlow loads
    from segnet_edge.optimize.quantize import format_report, quantize

    report = quantize(config)
    print(format_report(report))
    if report.preserve_sparsity and not report.sparsity_kept:
        print("segnet-edge quantize: error: prune-preserving QAT lost zeros (see the report)", file=sys.stderr)
        return 1
    return 0
