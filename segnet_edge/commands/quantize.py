"""`segnet-edge quantize`: argument parsing for segnet_edge.optimize.quantize.quantize."""

from __future__ import annotations

import argparse
import sys

from segnet_edge.commands.finetune_args import add_finetune_arguments, config_from_args

HELP = ("quantization-aware training (tfmot int8, custom layers included; prune-preserving on pruned models): "
        "writes a QAT .h5 that converts to int8 without calibration")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segnet_edge.optimize.config import ACTIVATION_RANGES, PRESERVE_SPARSITY, QATConfig
    from segnet_edge.vocabulary import UNPOOL_MODES

    d = QATConfig()
    parser.add_argument("model", metavar="MODEL", help="trained (optionally pruned) float segnet-edge model")
    parser.add_argument("--qat", action="store_true",
                        help="quantization-aware training (required: post-training int8 is `convert` with a "
                             "calibration set)")
    parser.add_argument("--out", default=d.out, help=f"QAT model file, .h5 (default {d.out}); "
                        "the report goes beside it as <name>.quantize.json")
    parser.add_argument("--preserve-sparsity", choices=PRESERVE_SPARSITY, default=d.preserve_sparsity,
                        help="prune-preserving QAT: auto (default) = when the model has zero weights")
    parser.add_argument("--unpool-mode", choices=UNPOOL_MODES, default=d.unpool_mode,
                        help="unpooling form of the QAT model (default %(default)s: the one TFLite keeps int8)")
    parser.add_argument("--activations", choices=ACTIVATION_RANGES, default=d.activations,
                        help="activation ranges: symmetric (default; zero point 0, so TensorRT's QDQ graph keeps the "
                        "ranges QAT learnt) or asymmetric (tfmot's: all 8 bits after a ReLU for TFLite / ONNX "
                        "Runtime, but the TensorRT graph is then calibrated afresh)")
    add_finetune_arguments(parser, d, "QAT")


def run(args: argparse.Namespace) -> int:
    from segnet_edge.device.errors import UsageError
    from segnet_edge.model_io import read_metadata
    from segnet_edge.optimize.config import QATConfig

    if not args.qat:
        raise UsageError("only quantization-aware training is done here: add --qat (post-training int8 is "
                         "`segnet-edge convert` with a `segnet-edge calibrate` set)")
    config = config_from_args(QATConfig, args)
    read_metadata(config.model)  # a missing or foreign model fails here, before TensorFlow loads
    from segnet_edge.optimize.quantize import format_report, quantize

    report = quantize(config)
    print(format_report(report))
    if report.preserve_sparsity and not report.sparsity_kept:
        print("segnet-edge quantize: error: prune-preserving QAT lost zeros (see the report)", file=sys.stderr)
        return 1
    return 0
