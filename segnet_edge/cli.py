"""`segnet-edge`: argument parsing only; each subcommand lives in its own module.

A command module exposes `HELP` (one line), `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs (or for
its --help), so `segnet-edge --help` and the board stay free of TensorFlow.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from segnet_edge import __version__
from segnet_edge.device.cli_core import EXIT_USAGE, OneLineParser, run_guarded

#: subcommand -> module. Adding a command is one module and one line here.
COMMANDS: dict[str, str] = {
    "synth": "segnet_edge.commands.synth",
    "train": "segnet_edge.commands.train",
    "evaluate": "segnet_edge.commands.evaluate",
    "prune": "segnet_edge.commands.prune",
    "quantize": "segnet_edge.commands.quantize",
    "calibrate": "segnet_edge.commands.calibrate",
    "convert": "segnet_edge.commands.convert",
    "profile": "segnet_edge.commands.profile",
}

_SUMMARIES = {
    "synth": "write a deterministic dataset of synthetic street scenes",
    "train": "train SegNet or SegNet-Basic on a dataset folder",
    "evaluate": "score a model: global / class accuracy, mIoU, confusion matrix",
    "prune": "channel pruning (smaller, faster dense model), magnitude or 2:4 pruning, with fine-tuning",
    "quantize": "quantization-aware training for int8 export (tfmot)",
    "calibrate": "build the representative set shared by every int8 exporter",
    "convert": "export TFLite / ONNX / TensorRT artifacts with a parity report",
    "profile": "run converted models on frames and report latency and memory",
}


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = OneLineParser(prog="segnet-edge", description="SegNet from training to a camera on an embedded GPU.")
    parser.add_argument("--version", action="version", version=f"segnet-edge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in COMMANDS.items():
        if name == chosen and _module_available(module_name):
            module = importlib.import_module(module_name)
            command = sub.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(command)
            command.set_defaults(_run=module.run)
        else:
            sub.add_parser(name, help=_SUMMARIES[name], add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if not hasattr(args, "_run"):
        print(f"segnet-edge: error: `{args.command}` needs optional packages that are not installed "
              "(pip install 'segnet-edge[all]')", file=sys.stderr)
        return EXIT_USAGE
    return run_guarded(f"segnet-edge {args.command}", lambda: args._run(args))


if __name__ == "__main__":
    sys.exit(main())
