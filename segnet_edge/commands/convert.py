"""`segnet-edge convert MODEL`: TFLite / ONNX / TensorRT artifacts with a parity report proving each."""

from __future__ import annotations

import argparse
import sys

from segnet_edge.calibration.representative import DEFAULT_CALIB_FRAMES
from segnet_edge.convert.keep_float import parse_layer_list
from segnet_edge.convert.options import (
    DEFAULT_OPSET,
    IO_DTYPES,
    LEGACY_TRT_OPSET,
    RANGE_METHODS,
    TRT_INT8_MODES,
    ConvertOptions,
)
from segnet_edge.device.cli_core import non_negative_int, parse_size, positive_int
from segnet_edge.vocabulary import OUTPUTS

HELP = "export TFLite / ONNX / TensorRT artifacts with a parity report that proves each one"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults are None here and live in ConvertOptions (one place); the help text quotes them.
    d = ConvertOptions()
    parser.add_argument("model", nargs="?", metavar="MODEL", help=".h5 or .keras model written by segnet-edge")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: MODEL_STEM_export/ next to the model)")
    parser.add_argument("--formats", nargs="+", metavar="F",
                        help="formats or groups, space or comma separated (default all; see --list-formats)")
    calib = parser.add_mutually_exclusive_group()
    calib.add_argument("--calib", metavar="NPZ", help="calibration set from `segnet-edge calibrate`")
    calib.add_argument("--calib-data", metavar="SRC",
                       help="dataset, image folder or video to build the calibration set from (saved as OUT/calib.npz)")
    parser.add_argument("--calib-count", type=positive_int, metavar="N",
                        help=f"--calib-data frames (default: up to {DEFAULT_CALIB_FRAMES})")
    parser.add_argument("--calib-split", metavar="NAME", help=f"--calib-data dataset split (default {d.calib_split})")
    parser.add_argument("--onnx-calib", choices=RANGE_METHODS,
                        help=f"QDQ activation ranges: percentile (clips rare outliers) or min/max (default {d.onnx_calib})")
    parser.add_argument("--onnx-calib-percentile", type=float, metavar="P",
                        help=f"--onnx-calib percentile's range cover (default {d.onnx_calib_percentile:g})")
    parser.add_argument("--tflite-calib", choices=RANGE_METHODS,
                        help="int8 TFLite activation ranges: percentile (clips rare outliers) or min/max "
                             f"(the converter's own) (default {d.tflite_calib})")
    parser.add_argument("--tflite-calib-percentile", type=float, metavar="P",
                        help=f"--tflite-calib percentile's range cover (default {d.tflite_calib_percentile:g})")
    parser.add_argument("--no-equalize", dest="equalize", action="store_false", default=None,
                        help="keep the model's own per-channel activation scales (default: equalize them on the "
                             "calibration frames, the same float function with finer int8 steps)")
    parser.add_argument("--eval-data", metavar="DIR", help="labelled dataset for parity (default: the calibration "
                                                          "set's held-out frames)")
    parser.add_argument("--eval-split", metavar="NAME", help=f"--eval-data split (default {d.eval_split})")
    parser.add_argument("--parity-frames", type=positive_int, metavar="N", help="frames per parity check "
                        f"(default {d.parity_frames})")
    parser.add_argument("--input-size", type=parse_size, metavar="HxW",
                        help="export at another size than the model was trained at (fully convolutional)")
    parser.add_argument("--io", dest="io_dtype", choices=IO_DTYPES,
                        help=f"input/output type of the int8 TFLite model (default {d.io_dtype}; float32 only with "
                             "the mixed-precision flags below)")
    parser.add_argument("--output", choices=OUTPUTS,
                        help="model output: class probabilities (default) or a uint8 label map, the argmax "
                        "inside the model (the board skips its own)")
    parser.add_argument("--batch", type=positive_int, metavar="N", help="static batch of ONNX and engines "
                        f"(default {d.batch})")
    parser.add_argument("--opset", type=int, metavar="N",
                        help=f"ONNX opset (default {DEFAULT_OPSET}, or {LEGACY_TRT_OPSET} for --trt-version below 8.5)")
    parser.add_argument("--trt-version", metavar="X.Y",
                        help=f"TensorRT on the target (default {d.trt_version}; JetPack 4.6 has 8.2, JetPack 5.1 has 8.5)")
    parser.add_argument("--trt-int8", choices=TRT_INT8_MODES,
                        help=f"int8 engine from the QDQ graph or the entropy calibrator + cache (default {d.trt_int8})")
    parser.add_argument("--workspace", dest="workspace_mib", type=positive_int, metavar="MIB",
                        help=f"TensorRT builder workspace limit in MiB (default {d.workspace_mib})")
    parser.add_argument("--sparsity", action="store_true", default=None,
                        help="let TensorRT use 2:4 sparse weights (pruned models on Ampere/Orin)")
    parser.add_argument("--seed", type=non_negative_int, help=f"--calib-data frame choice (default {d.seed})")
    parser.add_argument("--unsafe-load", action="store_true", default=None,
                        help="load a model with Lambda layers or unknown classes (only files you trust)")
    mixed = parser.add_argument_group("mixed precision (int8 TFLite; docs/int8-accuracy.md)")
    mixed.add_argument("--keep-float", type=parse_layer_list, metavar="LAYER[,LAYER...]",
                       help="leave these Keras layers (or `all`) in float: islands in the int8 TFLite model, nodes "
                            "without Q/DQ in the QDQ and ONNX Runtime graphs")
    mixed.add_argument("--layer-error", action="store_true", default=None,
                       help="measure each layer's int8 error alone and the pooling-index flips it makes (report.md)")
    mixed.add_argument("--precision-search", action="store_true", default=None,
                       help="keep the fewest layers float (worst int8 error first) that meet the budget below; "
                            "writes that int8 TFLite model")
    mixed.add_argument("--search-agreement", type=float, metavar="F",
                       help=f"budget: all-pixel argmax agreement with Keras (default {d.search_agreement:g})")
    mixed.add_argument("--search-miou-points", type=float, metavar="P",
                       help=f"budget: mIoU within P points of Keras (default {d.search_miou_points:g})")
    mixed.add_argument("--search-max-latency", type=float, metavar="X",
                       help="budget: at most X times the full int8 model's latency (default: no limit)")
    parser.add_argument("--list-formats", action="store_true", help="print the formats and exit")


_OPTION_FIELDS = ("io_dtype", "output", "batch", "opset", "trt_version", "trt_int8", "workspace_mib", "sparsity",
                  "input_size", "calib_count", "calib_split", "onnx_calib", "onnx_calib_percentile", "tflite_calib",
                  "tflite_calib_percentile", "equalize", "eval_split", "parity_frames", "seed", "unsafe_load",
                  "keep_float", "layer_error", "precision_search", "search_agreement", "search_miou_points",
                  "search_max_latency")


def run(args: argparse.Namespace) -> int:
    from segnet_edge.convert.registry import format_table
    from segnet_edge.device.errors import UsageError

    if args.list_formats:
        print(format_table())
        return 0
    if not args.model:
        raise UsageError("give the MODEL to convert (a .h5 or .keras file)")
    from segnet_edge.convert import ConvertOptions, convert_model

    options = ConvertOptions(**{k: getattr(args, k) for k in _OPTION_FIELDS if getattr(args, k) is not None})
    report = convert_model(args.model, args.out, args.formats, args.calib, calib_data=args.calib_data,
                           eval_data=args.eval_data, options=options,
                           log=lambda message: print(message, file=sys.stderr, flush=True))
    for line in report.summary_lines():
        print(line)
    print(f"report: {report.out_dir}/report.md ({'PASS' if report.passed else 'FAIL'})")
    return 0 if report.passed else 1
