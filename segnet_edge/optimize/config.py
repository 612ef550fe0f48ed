"""What `prune` and `quantize` are asked to do: dataclasses and their checks, no TensorFlow.

Kept apart from prune.py / quantize.py (which import TensorFlow and tfmot) so that
`segnet-edge prune --help` stays light and bad input is refused in a fraction of a
second, before seconds of TensorFlow import.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from segnet_edge.device.errors import DataError, UsageError
from segnet_edge.vocabulary import (
    CHANNEL_CRITERIA,
    DEFAULT_CHANNEL_CRITERION,
    LR_SCHEDULES,
    MODEL_SUFFIXES,
    OPTIMIZERS,
    UNPOOL_MODES,
)

PRESERVE_SPARSITY = ("auto", "on", "off")
#: QAT activation ranges. symmetric: zero point 0, the only int8 TensorRT takes, so `convert` builds the QDQ
#: graph from the QAT model's own ranges; asymmetric (tfmot's default): all 8 bits after a ReLU for TFLite and
#: ONNX Runtime, but TensorRT's QDQ graph then has to be calibrated afresh, into ranges the model never trained on.
ACTIVATION_RANGES = ("symmetric", "asymmetric")
_PATTERN = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")


def parse_structured(text: str) -> tuple[int, int]:
    """`"2:4"` -> (2, 4): at most N non-zeros in every M consecutive input-channel weights (NVIDIA's notation).

    Only 2:4 runs on the sparse tensor cores of Ampere / Orin GPUs; other N:M patterns
    shrink the file but no runtime accelerates them.
    """
    match = _PATTERN.match(str(text))
    if not match:
        raise UsageError(f"--structured must be N:M such as 2:4 (got {text!r})")
    keep, block = int(match.group(1)), int(match.group(2))
    if not 1 <= keep < block <= 64:
        raise UsageError(f"--structured N:M needs 1 <= N < M <= 64, e.g. 2:4 (got {text!r})")
    return keep, block


def _check_common(model: str, data: str, out: str, epochs: int, batch_size: int, lr: float, optimizer: str,
                  lr_schedule: str) -> None:
    if not model:
        raise UsageError("give the model to optimise (MODEL)")
    if not data or not Path(data).exists():
        raise DataError(f"{data}: no such dataset; give the folder the model was trained on (--data)")
    out_path = Path(out)
    if out_path.suffix not in MODEL_SUFFIXES:
        raise UsageError(f"--out {out}: give a .h5 or .keras file name")
    if out_path.is_dir():
        raise UsageError(f"--out {out}: is a folder; give a .h5 or .keras file name")
    if Path(model).exists() and out_path.exists() and out_path.resolve() == Path(model).resolve():
        raise UsageError(f"--out {out}: is the input model; write the optimised model to a new file")
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1 (got {epochs})")
    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1 (got {batch_size})")
    if not lr > 0:
        raise UsageError(f"--lr must be positive (got {lr})")
    if optimizer not in OPTIMIZERS:
        raise UsageError(f"unknown --optimizer {optimizer!r}; use one of {', '.join(OPTIMIZERS)}")
    if lr_schedule not in LR_SCHEDULES:
        raise UsageError(f"unknown --lr-schedule {lr_schedule!r}; use one of {', '.join(LR_SCHEDULES)}")


@dataclass
class FinetuneData:
    """What pruning and QAT both fine-tune with: the dataset's options and the loading/logging flags."""

    classes: str | None = None
    ignore_label: int | None = None  # None: the dataset's own
    val_split: str = "val"
    on_bad_sample: str = "fail"
    augment: bool = True
    seed: int = 0
    unsafe_load: bool = False
    verbose: int = 1


@dataclass
class PruneConfig(FinetuneData):
    """Magnitude (or N:M structured) pruning with fine-tuning; every default lives here."""

    model: str = ""
    data: str = ""
    out: str = "pruned.h5"
    sparsity: float | None = None  # None: 0.5 (with --structured, the pattern decides: 2:4 is 50%)
    structured: str | None = None  # "2:4"
    epochs: int = 4
    batch_size: int = 4
    optimizer: str = "adam"
    # Pruned weights need a real push to recover (at 1e-4 a 50% SegNet stayed 3-4 mIoU points down),
    # decayed to ~0 so the result settles like a trained model.
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    ramp: float = 0.5  # share of the fine-tuning steps over which sparsity rises to the target
    prune_classifier: bool = False
    #: channel (filter) pruning instead: the share of each coupled group's channels removed, e.g. 0.5
    channels: float | None = None
    criterion: str = DEFAULT_CHANNEL_CRITERION  # how filters are ranked for --channels (CHANNEL_CRITERIA)
    #: --channels keeps a multiple of this many channels per group: 4 lets 2:4 pruning follow on every conv
    channel_multiple: int = 4

    @property
    def target_sparsity(self) -> float:
        if self.structured:
            keep, block = parse_structured(self.structured)
            return 1.0 - keep / block
        return 0.5 if self.sparsity is None else float(self.sparsity)

    @property
    def m_by_n(self) -> tuple[int, int] | None:
        """tfmot's `sparsity_m_by_n`: (zeros, block), the complement of NVIDIA's N:M."""
        if not self.structured:
            return None
        keep, block = parse_structured(self.structured)
        return block - keep, block

    def validate(self) -> None:
        """Refuse bad values with one line each, before any TensorFlow is imported."""
        _check_common(self.model, self.data, self.out, self.epochs, self.batch_size, self.lr, self.optimizer,
                      self.lr_schedule)
        if self.structured:
            parse_structured(self.structured)
            if self.sparsity is not None:
                raise UsageError(f"--sparsity and --structured {self.structured} exclude each other: the N:M pattern "
                                 "fixes the sparsity; drop --sparsity")
        elif self.sparsity is not None and not 0.0 < float(self.sparsity) < 1.0:
            raise UsageError(f"--sparsity must be between 0 and 1, exclusive, e.g. 0.5 (got {self.sparsity})")
        if not 0.0 < self.ramp <= 1.0:
            raise UsageError(f"ramp must be in (0, 1] (got {self.ramp})")
        if self.criterion not in CHANNEL_CRITERIA:
            raise UsageError(f"--criterion must be one of {', '.join(CHANNEL_CRITERIA)} (got {self.criterion!r})")
        if self.channels is not None:
            if not 0.0 < float(self.channels) < 1.0:
                raise UsageError(f"--channels must be between 0 and 1, exclusive, e.g. 0.5 (got {self.channels})")
            if self.structured or self.sparsity is not None:
                raise UsageError(f"--channels and --{'structured' if self.structured else 'sparsity'} exclude each "
                                 "other: prune channels first, then prune the smaller model's weights")
            if self.channel_multiple < 1:
                raise UsageError(f"--channel-multiple must be at least 1 (got {self.channel_multiple})")
            if self.prune_classifier:
                raise UsageError("--channels never prunes the classifier's outputs (they are the classes); "
                                 "drop --prune-classifier")

    def to_json(self) -> dict:
        if self.channels is not None:
            return asdict(self)
        return {**asdict(self), "target_sparsity": self.target_sparsity}


@dataclass
class QATConfig(FinetuneData):
    """Quantization-aware training (int8, tfmot's default 8-bit scheme); every default lives here."""

    model: str = ""
    data: str = ""
    out: str = "qat.h5"
    epochs: int = 2
    batch_size: int = 4
    optimizer: str = "adam"
    lr: float = 1e-4
    lr_schedule: str = "cosine"
    # "auto": prune-preserving QAT when the model is sparse (a pruned model), plain QAT otherwise.
    preserve_sparsity: str = "auto"
    # "select": the only unpooling form TFLite's int8 quantizer keeps in int8 (see layers.MaxUnpooling2D).
    unpool_mode: str = "select"
    activations: str = "symmetric"  # one of ACTIVATION_RANGES: the boards we serve run TensorRT

    def validate(self) -> None:
        _check_common(self.model, self.data, self.out, self.epochs, self.batch_size, self.lr, self.optimizer,
                      self.lr_schedule)
        if Path(self.out).suffix != ".h5":
            raise UsageError(f"--out {self.out}: a QAT model saves as .h5 only (tfmot's quantize wrappers do not "
                             "reload from the .keras format); give a .h5 file name")
        if self.preserve_sparsity not in PRESERVE_SPARSITY:
            raise UsageError(f"--preserve-sparsity must be one of {', '.join(PRESERVE_SPARSITY)} "
                             f"(got {self.preserve_sparsity!r})")
        if self.unpool_mode not in UNPOOL_MODES:
            raise UsageError(f"--unpool-mode must be one of {', '.join(UNPOOL_MODES)} (got {self.unpool_mode!r})")
        if self.activations not in ACTIVATION_RANGES:
            raise UsageError(f"--activations must be one of {', '.join(ACTIVATION_RANGES)} (got {self.activations!r})")

    def to_json(self) -> dict:
        return asdict(self)
