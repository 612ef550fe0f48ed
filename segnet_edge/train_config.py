"""What `segnet-edge train` can be asked: TensorFlow-free, so `train --help` and argument errors are instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass

STRATEGIES = ("default", "mirrored", "multi-worker")
#: Base learning rates from the authors' solver files (SGD).
REFERENCE_LR = {"segnet": 0.001, "segnet-basic": 0.1}
#: Adam's base learning rate, for either architecture.
ADAM_LR = 0.001

#: Named sets of training settings; a flag given on the command line wins over its recipe. "cpu" is the
#: dataclass's own defaults: measured on CamVid at 120x160 to learn most in ~20 minutes on 2 cores
#: (docs/recipes.md). "authors" is the SegNet solver files': SGD at their base rate, constant, median-frequency
#: weights, no weight averaging.
RECIPES: dict[str, dict] = {
    "cpu": {},
    "authors": {"optimizer": "sgd", "lr": None, "lr_schedule": "constant", "class_weight_power": 1.0, "ema": None},
}


def default_lr(arch: str, optimizer: str) -> float:
    """The learning rate when none is given: the authors' for SGD, ADAM_LR for Adam."""
    return REFERENCE_LR.get(arch, 0.001) if optimizer == "sgd" else ADAM_LR


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/segnet"
    arch: str = "segnet"
    alpha: float = 1.0
    input_size: tuple[int, int] = (360, 480)
    epochs: int = 40
    batch_size: int = 4
    optimizer: str = "adam"
    lr: float | None = None  # None: default_lr(arch, optimizer)
    lr_schedule: str = "cosine"  # the authors' solvers keep the rate fixed (recipe "authors")
    momentum: float = 0.9
    weight_decay: float = 5e-4
    class_balancing: bool = True
    #: median-frequency weights raised to this power: 1 is the authors' weighting, 0.5 softer (rare classes
    #: still count more, without trading away the common ones' global accuracy)
    class_weight_power: float = 0.5
    #: momentum of an exponential moving average of the weights that validation, best.h5 and the final model use
    #: (None: the raw weights): it damps the epoch-to-epoch swing of validation mIoU
    ema: float | None = 0.99
    recipe: str = "cpu"  # what the settings not given came from (RECIPES)
    ignore_label: int | None = None  # None: from the dataset's classes (255 unless it says otherwise)
    classes: str | None = None
    vgg_weights: str | None = None
    freeze_encoder: bool = False
    resume: bool = False
    augment: bool = True
    seed: int = 0
    strategy: str = "default"
    on_bad_sample: str = "fail"
    input_pipeline: str = "auto"  # memory | stream | auto: memory when the decoded frames fit the loader's limit
    val_split: str = "val"
    unpool_mode: str = "onehot"
    verbose: int = 1

    @classmethod
    def from_recipe(cls, recipe: str = "cpu", **given) -> TrainConfig:
        """The recipe's settings, then `given` on top (a user's flags)."""
        if recipe not in RECIPES:
            from segnet_edge.device.errors import UsageError

            raise UsageError(f"unknown --recipe {recipe!r}; use one of {', '.join(RECIPES)}")
        return cls(**{**RECIPES[recipe], **given, "recipe": recipe})

    def to_json(self) -> dict:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        return data
