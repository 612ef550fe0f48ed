"""What `segnet-edge train` can be asked: TensorFlow-free, so `train --help` and argument errors are instant."""

from __future__ import annotations

from dataclasses import asdict, dataclass

STRATEGIES = ("default", "mirrored", "multi-worker")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "cosine", "poly")
#: Base learning rates from the authors' solver files.
REFERENCE_LR = {"segnet": 0.001, "segnet-basic": 0.1}


@dataclass
class TrainConfig:
    data: str = ""
    out: str = "runs/segnet"
    arch: str = "segnet"
    alpha: float = 1.0
    input_size: tuple[int, int] = (360, 480)
    epochs: int = 10
    batch_size: int = 4
    optimizer: str = "sgd"
    lr: float | None = None  # None: the authors' base lr for the architecture
    lr_schedule: str = "constant"  # the authors' solvers keep the rate fixed
    momentum: float = 0.9
    weight_decay: float = 5e-4
    class_balancing: bool = True
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

    def to_json(self) -> dict:
        data = asdict(self)
        data["input_size"] = list(self.input_size)
        return data
