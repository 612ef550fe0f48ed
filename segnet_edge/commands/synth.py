"""`segnet-edge synth OUT`: write a deterministic synthetic street-scene dataset (numpy + OpenCV only)."""

from __future__ import annotations

import argparse
import sys

from segnet_edge.device.cli_core import non_negative_int, parse_size

HELP = "write a deterministic dataset of synthetic street scenes in the CamVid layout"
#: Training scenes when --count is not given (SynthConfig has no default: a library caller says how many).
DEFAULT_COUNT = 100


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segnet_edge.data.synth import MIN_SIZE, SynthConfig

    d = SynthConfig(count=DEFAULT_COUNT)
    parser.add_argument("out", metavar="OUT", help="dataset folder to create (must not exist, or be empty)")
    parser.add_argument("--count", type=int, default=d.count, metavar="N", help=f"training scenes (default {d.count})")
    parser.add_argument("--size", type=parse_size, default=d.size, metavar="HxW",
                        help=f"scene size in pixels, at least {MIN_SIZE}x{MIN_SIZE} (default {d.size[0]}x{d.size[1]})")
    parser.add_argument("--seed", type=non_negative_int, default=d.seed, metavar="S",
                        help=f"the same seed writes byte-identical files (default {d.seed})")
    parser.add_argument("--val-count", type=non_negative_int, default=None, metavar="M",
                        help="validation scenes (default max(1, N // 4))")
    parser.add_argument("--test-count", type=non_negative_int, default=None, metavar="M",
                        help="test scenes (default max(1, N // 4))")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUT if it already holds a dataset")


def run(args: argparse.Namespace) -> int:
    from segnet_edge.data.synth import CLASS_NAMES, SynthConfig, write_synth_dataset

    config = SynthConfig(count=args.count, size=tuple(args.size), seed=args.seed,
                         val_count=args.val_count, test_count=args.test_count)
    summary = write_synth_dataset(args.out, config, overwrite=args.overwrite)
    total = sum(summary.class_pixels) or 1
    shares = ", ".join(f"{name} {100 * n / total:.1f}%" for name, n in zip(CLASS_NAMES, summary.class_pixels))
    counts = ", ".join(f"{split} {n}" for split, n in summary.counts.items())
    print(f"wrote {summary.out}: {counts} scenes at {summary.size[0]}x{summary.size[1]}, seed {summary.seed}, "
          f"in {summary.seconds:.1f}s", file=sys.stdout)
    print(f"train pixels: {shares}", file=sys.stdout)
    return 0
