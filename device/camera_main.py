"""`run_camera.py`: stream a camera (or file, folder, URL, synthetic frames) through one converted model.

Bad input ends with one line on stderr and exit code 2; a stream that ends,
drops for good, or is stopped with Ctrl-C / SIGTERM still writes its report.
"""

from __future__ import annotations

import sys

from segnet_edge.device.arguments import add_output_arguments, add_stream_arguments, config_from_args
from segnet_edge.device.cli_core import OneLineParser, run_guarded
from segnet_edge.device.reports import markdown_table
from segnet_edge.device.session import RunConfig, run_session

PROG = "run_camera"


def build_parser() -> OneLineParser:
    parser = OneLineParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True, help="a .tflite, .onnx or .engine file from segnet-edge convert")
    add_stream_arguments(parser, RunConfig())
    add_output_arguments(parser, RunConfig())
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_guarded(PROG, lambda: _run(args))


def _run(args) -> int:
    config = config_from_args(args, RunConfig())
    result = run_session([args.model], config)
    report = result.report
    print(markdown_table(report), end="")
    for model in report.models:
        print(f"{PROG}: {model.frames} frames measured (+{model.warmup_frames} warm-up), ended by {model.ended_by}"
              + (f", {model.skipped_frames} unreadable frames skipped" if model.skipped_frames else ""))
    if report.interrupted:
        print(f"{PROG}: stopped by {report.interrupted}")
    print(f"{PROG}: report in {config.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
