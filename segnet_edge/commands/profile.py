"""`segnet-edge profile`: run converted models through the device pipeline and compare them."""

from __future__ import annotations

import argparse

HELP = "run converted models on frames (synthetic by default) and report latency and memory"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segnet_edge.device.arguments import add_stream_arguments
    from segnet_edge.device.session import RunConfig

    parser.add_argument("models", nargs="+", metavar="MODEL", help=".tflite, .onnx or .engine files to compare")
    add_stream_arguments(parser, RunConfig.profile_defaults())


def run(args: argparse.Namespace) -> int:
    """Same pipeline as run_camera.py with no window or video; prints the comparison table."""
    from segnet_edge.device.arguments import config_from_args
    from segnet_edge.device.reports import markdown_table
    from segnet_edge.device.session import RunConfig, run_session

    config = config_from_args(args, RunConfig.profile_defaults())
    result = run_session(args.models, config)
    print(markdown_table(result.report), end="")
    if result.report.interrupted:
        print(f"stopped by {result.report.interrupted}")
    print(f"report: {', '.join(str(p) for p in result.written)}")
    return 0
