"""`segnet-edge prune`: argument parsing for segnet_edge.optimize.prune.prune."""

from __future__ import annotations

import argparse
import sys

from segnet_edge.commands.finetune_args import add_finetune_arguments, config_from_args
from segnet_edge.device.cli_core import positive_int

HELP = ("magnitude or N:M (2:4) structured pruning, or channel pruning into a smaller dense model (--channels), "
        "with fine-tuning; writes a plain .h5 and a JSON report")


def _fraction(text: str) -> float:
    """Sparsity as a fraction strictly between 0 and 1 (one argparse line otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number between 0 and 1, e.g. 0.5 (got {text!r})") from None
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, exclusive, e.g. 0.5 (got {text!r})")
    return value


def _structured(text: str) -> str:
    from segnet_edge.device.errors import UsageError
    from segnet_edge.optimize.config import parse_structured

    try:
        parse_structured(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("--structured ", "")) from None
    return text.strip()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segnet_edge.optimize.config import CHANNEL_CRITERIA, PruneConfig

    d = PruneConfig()
    parser.add_argument("model", metavar="MODEL", help="trained segnet-edge .h5 / .keras model (float)")
    parser.add_argument("--out", default=d.out, help=f"pruned model file, .h5 or .keras (default {d.out}); "
                        "the report goes beside it as <name>.prune.json")
    parser.add_argument("--sparsity", type=_fraction, default=d.sparsity,
                        help=f"share of each pruned kernel set to zero (default {d.target_sparsity:g})")
    parser.add_argument("--structured", type=_structured, default=d.structured, metavar="N:M",
                        help="N:M structured sparsity along input channels instead, e.g. 2:4 "
                             "(Ampere / Orin sparse tensor cores)")
    parser.add_argument("--prune-classifier", action="store_true",
                        help="prune the final classifier conv too (kept dense by default)")
    parser.add_argument("--channels", type=_fraction, default=d.channels, metavar="RATIO",
                        help="channel pruning instead: remove this share of the filters of every coupled group "
                             "(pool i's conv and the tensor unpool i receives as one) and write a smaller dense "
                             "model, faster on every runtime; e.g. 0.5")
    parser.add_argument("--channel-multiple", type=positive_int, default=d.channel_multiple, metavar="N",
                        help=f"--channels keeps a multiple of N channels per group (default {d.channel_multiple}: "
                             "2:4 pruning can follow on every conv)")
    parser.add_argument("--criterion", choices=CHANNEL_CRITERIA, default=d.criterion,
                        help=f"how --channels ranks filters: l1 (kernel L1 norm) or bn (batch norm |gamma|, "
                             f"Network Slimming) (default {d.criterion})")
    add_finetune_arguments(parser, d, "fine-tuning")


def run(args: argparse.Namespace) -> int:
    from segnet_edge.model_io import read_metadata
    from segnet_edge.optimize.config import PruneConfig

    config = config_from_args(PruneConfig, args)
    read_metadata(config.model)  # a missing or foreign model fails here, before TensorFlow loads
    if config.channels is not None:
        from segnet_edge.optimize.channel_prune import format_report, prune_channels

        print(format_report(prune_channels(config)))
        return 0
    from segnet_edge.optimize.prune import format_report, prune

    report = prune(config)
    print(format_report(report))
    if report.pattern_ok is False:
        print(f"segnet-edge prune: error: {config.structured} pattern violated in "
              f"{sum(1 for v in report.pattern_violations.values() if v)} kernels (see the report)", file=sys.stderr)
        return 1
    if not report.target_reached:
        print(f"segnet-edge prune: error: reached {100 * report.sparsity_after.pruned_sparsity:.1f}% sparsity, not "
              f"{100 * config.target_sparsity:.1f}% (see the report)", file=sys.stderr)
        return 1
    return 0
