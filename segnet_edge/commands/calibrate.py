"""`segnet-edge calibrate --source SRC --size HxW --out calib.npz`: the representative set for int8."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from segnet_edge.calibration.representative import SOURCE_KINDS, CalibrationRecipe
from segnet_edge.data.loader import BAD_SAMPLE_POLICIES
from segnet_edge.device.cli_core import non_negative_int, parse_size, positive_int

HELP = "build the representative set (calib.npz) shared by every int8 exporter"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Defaults live in CalibrationRecipe; None here means "the recipe's default", which the help quotes.
    d = {f.name: f.default for f in fields(CalibrationRecipe)}
    parser.add_argument("--source", required=True, metavar="SRC",
                        help="a dataset folder (or list file), a folder of images, or a video file")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", type=parse_size, metavar="HxW",
                      help="the model's input size; frames are resized to it by device/preprocess.py "
                           "(default: --model's, else the source's own frame size)")
    size.add_argument("--model", metavar="MODEL",
                      help="take the input size from this model (.h5/.keras) or converted artifact")
    parser.add_argument("--out", default="calib.npz", metavar="FILE", help="where to store the set (default %(default)s)")
    parser.add_argument("--count", type=positive_int, default=None, metavar="N",
                        help=f"calibration frames (default {d['count']}); fewer available is an error")
    parser.add_argument("--holdout", type=non_negative_int, default=None, metavar="M",
                        help=f"extra frames set aside for convert's parity check (default {d['holdout']})")
    parser.add_argument("--seed", type=non_negative_int, default=None, metavar="S",
                        help=f"the same seed picks the same frames (default {d['seed']})")
    parser.add_argument("--split", default=None, metavar="NAME", help=f"dataset split to read (default {d['split']})")
    parser.add_argument("--kind", choices=SOURCE_KINDS, default=None,
                        help="what SRC is (default: detected)")
    parser.add_argument("--on-bad-sample", choices=BAD_SAMPLE_POLICIES, default=None,
                        help="an unreadable image (or held-out label): stop and name it (default), or pass it over "
                             "for the next image in the seeded order and list it")
    parser.add_argument("--force", action="store_true", help="rebuild even when OUT was made by the same recipe")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from segnet_edge.calibration.representative import CalibrationRecipe, load_or_build
    from segnet_edge.device.errors import UsageError

    out = Path(args.out)
    if out.is_dir():
        raise UsageError(f"{out}: is a folder; give a file name for --out, e.g. {out / 'calib.npz'}")
    chosen = {k: getattr(args, k) for k in ("count", "holdout", "seed", "split", "kind", "on_bad_sample")
              if getattr(args, k) is not None}
    recipe = CalibrationRecipe(source=args.source, size=_size(args), **chosen)
    calib, reused = load_or_build(out, recipe, force=args.force)
    r = calib.recipe
    verb = "reused" if reused else "wrote"
    labels = " with labels" if calib.holdout_labels is not None else ""
    print(f"{verb} {out}: {len(calib)} calibration + {len(calib.holdout_frames)} held-out frames{labels} "
          f"at {r.size[0]}x{r.size[1]} from {r.kind} {r.source} (seed {r.seed})", file=sys.stdout)
    if calib.skipped:
        shown = "; ".join(calib.skipped[:3]) + (f"; and {len(calib.skipped) - 3} more" if len(calib.skipped) > 3 else "")
        print(f"skipped {len(calib.skipped)} unreadable sample(s): {shown}", file=sys.stdout)
    return 0


def _size(args: argparse.Namespace) -> tuple[int, int]:
    """--size, else the model's input size, else the source's first frame (said on stderr, as it was guessed)."""
    if args.size is not None:
        return tuple(args.size)
    if args.model is not None:
        from pathlib import Path

        from segnet_edge.device.artifact_metadata import read_artifact_metadata
        from segnet_edge.model_io import read_metadata
        from segnet_edge.vocabulary import MODEL_SUFFIXES

        read = read_metadata if Path(args.model).suffix in MODEL_SUFFIXES else read_artifact_metadata
        size = tuple(read(args.model).input_size)
        print(f"size {size[0]}x{size[1]}: the input size of {args.model}", file=sys.stderr)
        return size
    from segnet_edge.calibration.representative import source_frame_size

    size = source_frame_size(args.source, args.kind or "auto", args.split or "train")
    print(f"size {size[0]}x{size[1]}: the source's own frames (give --size or --model for a model's input size)",
          file=sys.stderr)
    return size
