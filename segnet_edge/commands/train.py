"""`segnet-edge train`: argument parsing for segnet_edge.train.train."""

from __future__ import annotations

import argparse
import json

from segnet_edge.data.loader import BAD_SAMPLE_POLICIES, IN_MEMORY_LIMIT_BYTES, INPUT_PIPELINES
from segnet_edge.device.cli_core import parse_size, positive_float, positive_int

HELP = "train SegNet or SegNet-Basic on a dataset folder (best checkpoint by validation mIoU)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from segnet_edge.train_config import RECIPES, STRATEGIES, TrainConfig
    from segnet_edge.vocabulary import ARCHITECTURES, LR_SCHEDULES, OPTIMIZERS

    d = TrainConfig()
    # A setting a recipe decides is left out of the namespace unless given (SUPPRESS), so the flag wins over it.
    unset = argparse.SUPPRESS
    parser.add_argument("--data", required=True, help="dataset folder (train.txt/val.txt, or images/ + labels/)")
    parser.add_argument("--out", default=d.out, help=f"output folder (default {d.out})")
    parser.add_argument("--arch", choices=ARCHITECTURES, default=d.arch)
    parser.add_argument("--alpha", type=positive_float, default=d.alpha, help="width multiplier")
    parser.add_argument("--input-size", type=parse_size, default=d.input_size, metavar="HxW",
                        help=f"network input size (default {d.input_size[0]}x{d.input_size[1]}, CamVid's)")
    parser.add_argument("--recipe", choices=tuple(RECIPES), default=d.recipe,
                        help=f"settings for the flags not given: cpu (default: {d.optimizer}, {d.lr_schedule} decay, "
                             f"class-weight power {d.class_weight_power:g}, weight averaging {d.ema:g}; val mIoU "
                             "0.515 on CamVid 120x160 in ~22 min on 2 cores, docs/recipes.md) or authors (SGD at "
                             "their base rate, constant, median-frequency weights)")
    parser.add_argument("--epochs", type=positive_int, default=unset, help=f"(default {d.epochs})")
    parser.add_argument("--batch-size", type=positive_int, default=d.batch_size)
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default=unset, help=f"(default: the recipe's, {d.optimizer})")
    parser.add_argument("--lr", type=positive_float, default=unset,
                        help="learning rate (default: Adam 0.001; SGD the authors' 0.001 for segnet, 0.1 for "
                             "segnet-basic)")
    parser.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=unset,
                        help=f"constant (the authors'), cosine or poly decay over the run (default {d.lr_schedule})")
    parser.add_argument("--momentum", type=float, default=d.momentum)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--no-class-balancing", dest="class_balancing", action="store_false",
                        help="plain cross-entropy instead of median-frequency class weights")
    parser.add_argument("--class-weight-power", type=float, default=unset, metavar="P",
                        help="median-frequency class weights raised to P: 1 the authors', 0.5 softer (better global "
                             f"accuracy), 0 none (default {d.class_weight_power:g})")
    averaging = parser.add_mutually_exclusive_group()
    averaging.add_argument("--ema", type=positive_float, default=unset, metavar="M",
                           help="validate and checkpoint a moving average of the weights with momentum M (damps the "
                                f"epoch-to-epoch swing; default {d.ema:g})")
    averaging.add_argument("--no-ema", dest="ema", action="store_const", const=None, default=unset,
                           help="validate and checkpoint the raw weights")
    parser.add_argument("--ignore-label", type=int, default=d.ignore_label,
                        help="label value excluded from loss and metrics (default: the dataset's, else 255; CamVid 11)")
    parser.add_argument("--classes", default=d.classes, help="class names/palette JSON (default: DATA/classes.json)")
    parser.add_argument("--vgg-weights", default=d.vgg_weights,
                        help="local VGG16 ImageNet weights .h5 (keras.applications.VGG16 include_top=False)")
    parser.add_argument("--freeze-encoder", action="store_true", help="keep the VGG16 encoder fixed")
    parser.add_argument("--resume", action="store_true", help="continue from OUT's last complete epoch")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--strategy", choices=STRATEGIES, default=d.strategy,
                        help="tf.distribute strategy for several GPUs or machines")
    parser.add_argument("--on-bad-sample", choices=BAD_SAMPLE_POLICIES, default=d.on_bad_sample)
    parser.add_argument("--input-pipeline", choices=INPUT_PIPELINES, default=d.input_pipeline,
                        help="hold the frames in memory, or stream them from disk in tf.data (default auto: "
                             f"memory up to {IN_MEMORY_LIMIT_BYTES >> 20} MiB of decoded frames)")
    parser.add_argument("--val-split", default=d.val_split)
    parser.add_argument("--quiet", dest="verbose", action="store_const", const=0, default=d.verbose)


def run(args: argparse.Namespace) -> int:
    from segnet_edge.train import TrainConfig, train

    fields = TrainConfig.__dataclass_fields__
    given = {k: v for k, v in vars(args).items() if k in fields and k != "recipe"}
    config = TrainConfig.from_recipe(args.recipe, **given)
    result = train(config)
    print(json.dumps({"best": result.best_path, "best_val_miou": round(result.best_miou, 4),
                      "epochs": result.epochs_done, "interrupted": result.interrupted}))
    return 130 if result.interrupted else 0
