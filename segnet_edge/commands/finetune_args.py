"""The arguments `prune` and `quantize` share: both fine-tune a trained model on its own dataset."""

from __future__ import annotations

import argparse

from segnet_edge.data.loader import BAD_SAMPLE_POLICIES
from segnet_edge.device.cli_core import positive_float, positive_int


def add_finetune_arguments(parser: argparse.ArgumentParser, defaults, what: str) -> None:
    """--data, the optimiser and schedule, the dataset options and loading/logging flags.

    `defaults` is the command's config dataclass instance (PruneConfig / QATConfig): one place for defaults.
    """
    from segnet_edge.vocabulary import LR_SCHEDULES, OPTIMIZERS

    d = defaults
    parser.add_argument("--data", required=True, help="dataset to fine-tune and validate on (the training data)")
    parser.add_argument("--epochs", type=positive_int, default=d.epochs, help=f"{what} epochs (default {d.epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    parser.add_argument("--lr", type=positive_float, default=d.lr, help=f"{what} learning rate (default {d.lr})")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=d.lr_schedule,
                        help=f"learning-rate decay over the {what} (default {d.lr_schedule})")
    parser.add_argument("--classes", default=d.classes, help="class names/palette JSON (default: the dataset's)")
    parser.add_argument("--ignore-label", type=int, default=d.ignore_label,
                        help="label value to ignore (default: the dataset's)")
    parser.add_argument("--val-split", default=d.val_split)
    parser.add_argument("--on-bad-sample", choices=BAD_SAMPLE_POLICIES, default=d.on_bad_sample)
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--unsafe-load", action="store_true", help="allow Lambda/unknown layers (trusted files only)")
    parser.add_argument("--quiet", dest="verbose", action="store_const", const=0, default=d.verbose)


def config_from_args(config_class, args: argparse.Namespace):
    """The config dataclass from the parsed arguments it has fields for, validated (one-line errors)."""
    fields = config_class.__dataclass_fields__
    config = config_class(**{k: v for k, v in vars(args).items() if k in fields})
    config.validate()
    return config
