"""`run_camera.py`: stream a camera (or file, folder, URL, synthetic frames) through one converted model.

Bad input ends with one line on stderr and exit code 2; a stream that ends,
drops for good, or is stopped with Ctrl-C / SIGTERM still writes its report.
"""

from __future__ import annotations

import argparse
import sys

from segnet_edge.device.arguments import add_output_arguments, add_stream_arguments, config_from_args
from segnet_edge.device.errors import UsageError
from segnet_edge.device.reports import markdown_table
from segnet_edge.device.session import RunConfig, run_session
from segnet_edge.device.sources import redact

PROG = "run_camera"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {redact(message)} (see --help)\n")


def build_parser() -> _Parser:
    parser = _Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("-m", "--model", required=True, help="a .tflite, .onnx or .engine file from segnet-edge convert")
    add_stream_arguments(parser, RunConfig())
    add_output_arguments(parser, RunConfig())
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args, RunConfig())
        result = run_session([args.model], config)
    except UsageError as exc:
        print(f"{PROG}: error: {redact(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # a disk or device failed under us (written outputs raise OutputError)
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {redact(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: aborted", file=sys.stderr)
        return 130
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
