"""`segnet-edge evaluate`: argument parsing for segnet_edge.evaluate.evaluate."""

from __future__ import annotations

import argparse

from segnet_edge.data.loader import BAD_SAMPLE_POLICIES, INPUT_PIPELINES
from segnet_edge.device.cli_core import positive_int

HELP = ("score a model or a converted artifact on a dataset split: global / class accuracy, mIoU, per-class IoU, "
        "confusion matrix")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segnet_edge.evaluate import EvaluateConfig

    d = EvaluateConfig()
    parser.add_argument("model", nargs="+",
                        help="segnet-edge .h5 or .keras model, or an artifact from `segnet-edge convert` (.tflite, "
                             ".onnx, .engine) scored through the board's runtime; several: one table side by side")
    parser.add_argument("--data", required=True, help="dataset folder or list file")
    parser.add_argument("--split", default=d.split, help="train, val or test (default %(default)s)")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size, help="Keras models")
    parser.add_argument("--threads", type=positive_int, default=d.threads,
                        help="an artifact's runtime CPU threads (default: the runtime's)")
    parser.add_argument("--json", dest="json_path", default=None, help="write the full report as JSON")
    parser.add_argument("--png", dest="png_path", default=None, help="write the confusion matrix heat map")
    parser.add_argument("--colour-baseline", action="store_true",
                        help="also score a per-pixel colour classifier fitted on the train split")
    parser.add_argument("--ignore-label", type=int, default=None, help="override the model's ignore label")
    parser.add_argument("--on-bad-sample", choices=BAD_SAMPLE_POLICIES, default=d.on_bad_sample)
    parser.add_argument("--input-pipeline", choices=INPUT_PIPELINES, default=d.input_pipeline,
                        help="hold the split in memory first, or stream it batch by batch (default %(default)s: by size)")
    parser.add_argument("--unsafe-load", action="store_true", help="allow Lambda/unknown layers (trusted files only)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the model file's SHA-256 check against the digest recorded when it was written")


def run(args: argparse.Namespace) -> int:
    from segnet_edge.evaluate import EvaluateConfig, evaluate_models, format_comparison, format_table

    fields = EvaluateConfig.__dataclass_fields__
    config = EvaluateConfig(**{k: v for k, v in vars(args).items() if k in fields and k != "model"})
    reports = evaluate_models(config, args.model)
    print(format_table(reports[0]) if len(reports) == 1 else format_comparison(reports))
    return 0
