"""Training: median-frequency balanced SGD (Adam optional), best checkpoint by validation mIoU, resume.

Outputs in OUT: `best.h5` (highest validation mIoU, loadable by segnet_edge.load_model),
`last.h5` (the resume point: weights, optimizer state, epoch counter and log in one file,
written after every epoch; `train_state.json` is a readable copy), `log.csv` (rewritten from
the resume point). Every file is written atomically, so a kill at any moment leaves the
previous complete checkpoint in place.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from segnet_edge._tf import keras, tf
from segnet_edge.atomic import write_text_atomic
from segnet_edge.class_weights import ClassCounter, median_frequency_weights
from segnet_edge.data.layout import ClassInfo, find_samples, load_class_info
from segnet_edge.data.loader import Split, choose_pipeline, load_samples, scan_samples
from segnet_edge.device.errors import UsageError
from segnet_edge.device.metadata import ModelMetadata, Normalization
from segnet_edge.metrics import accumulate_confusion, scores
from segnet_edge.model_io import save_model
from segnet_edge.models import ModelConfig
from segnet_edge.train_config import (  # noqa: F401
    REFERENCE_LR,
    STRATEGIES,
    TrainConfig,
    default_lr,
)
from segnet_edge.vocabulary import ARCHITECTURES, LR_SCHEDULES, OPTIMIZERS


@dataclass
class TrainResult:
    best_path: str
    best_miou: float
    epochs_done: int
    class_weights: list[float]
    history: list[dict] = field(default_factory=list)
    interrupted: bool = False

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class PreparedData:
    info: ClassInfo
    train: Split  # a LoadedSplit in memory, or a StreamedSplit read from disk as it is used
    val: Split
    class_weights: np.ndarray
    pipeline: str = "memory"  # "memory" | "stream", as choose_pipeline decided


def prepare_data(data: str, input_size: tuple[int, int], classes: str | None = None,
                 ignore_label: int | None = None, val_split: str = "val", on_bad_sample: str = "fail",
                 class_balancing: bool = True, verbose: int = 1, input_pipeline: str = "auto") -> PreparedData:
    """Check train + validation frames, held in memory or streamed (`choose_pipeline`); class weights from
    the training labels, counted in the same pass that checks them."""
    train_samples = find_samples(data, "train")
    info = _class_info(data, classes, ignore_label, train_samples, verbose)
    try:
        val_samples = find_samples(data, val_split)
    except UsageError:
        if len(train_samples) < 2:
            raise UsageError(f"{data}: no {val_split!r} split and too few training samples to hold some out") from None
        held = max(1, len(train_samples) // 10)
        val_samples, train_samples = train_samples[-held:], train_samples[:-held]
        if verbose:
            print(f"no {val_split!r} split: validating on the last {held} training samples", file=sys.stderr)
    pipeline, why = choose_pipeline(len(train_samples) + len(val_samples), input_size, input_pipeline)
    counter = ClassCounter(info.num_classes, info.ignore_label)
    if pipeline == "memory":
        train = load_samples(train_samples, input_size, info, on_bad_sample, progress=bool(verbose))
        val = load_samples(val_samples, input_size, info, on_bad_sample, progress=bool(verbose))
    else:
        train = scan_samples(train_samples, input_size, info, on_bad_sample, bool(verbose), counter.add)
        val = scan_samples(val_samples, input_size, info, on_bad_sample, bool(verbose))
    for split in (train, val):
        for reason in split.skipped:
            print(f"skipped: {reason}", file=sys.stderr)
    if verbose:  # once every frame is checked: a bad one is the run's only line
        where = "held in memory" if pipeline == "memory" else "streamed from disk (read, checked, resized in tf.data)"
        print(f"input: frames {where}: {why}", file=sys.stderr)
    if not class_balancing:
        weights = np.ones(info.num_classes, dtype=np.float32)
    elif pipeline == "memory":
        weights = median_frequency_weights(train.labels, info.num_classes, info.ignore_label)
    else:
        weights = counter.weights()
    return PreparedData(info, train, val, weights, pipeline)


def _class_info(data: str, classes: str | None, ignore_label: int | None, samples, verbose: int) -> ClassInfo:
    """The dataset's classes; with no class file, as many classes as the labels' largest value needs."""
    from segnet_edge.data.layout import has_class_source
    from segnet_edge.data.loader import read_labels

    if classes or has_class_source(data):
        return load_class_info(data, classes, ignore_label)
    ignore = 255 if ignore_label is None else ignore_label
    largest = -1
    for sample in samples:
        if sample.label is not None:
            values = np.unique(read_labels(sample.label))
            values = values[values != ignore]
            largest = max(largest, int(values.max()) if values.size else -1)
    if largest < 1:
        raise UsageError(f"{data}: labels hold fewer than 2 classes; check the labels or give --classes")
    if verbose:
        print(f"no class file: {largest + 1} classes from the labels (give --classes to name them)", file=sys.stderr)
    return load_class_info(data, None, ignore, num_classes=largest + 1)


def evaluate_miou(model, split: Split, info: ClassInfo, norm: Normalization, batch_size: int = 4) -> float:
    """mIoU on a split, batch by batch (memory flat in the split's length)."""
    from segnet_edge.data.pipeline import predict_batch

    cm, _ = accumulate_confusion(split.batches(batch_size), lambda images: predict_batch(model, images, norm),
                                 info.num_classes, info.ignore_label)
    return scores(cm).mean_iou


def _strategy(name: str):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UsageError(f"unknown --strategy {name!r}; use one of {', '.join(STRATEGIES)}")


def is_chief(strategy) -> bool:
    """Whether this process writes the run's files: the `chief` task, else worker 0, else the only process."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs


def worker_dataset(strategy, split: Split, norm: Normalization, config: TrainConfig):
    """(distributed dataset, steps per epoch) for several workers: each worker reads its own shard of the
    split (tf.data.Dataset.shard by input pipeline), batched per replica; every worker runs the same steps,
    ceil(frames / global batch), over an endless reshuffled stream of its shard, so one epoch reads about
    frames / workers frames on each worker and no frame twice."""
    from segnet_edge.data.pipeline import shard_indices, split_dataset

    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UsageError(f"--batch-size {config.batch_size} does not divide among {replicas} replicas; "
                         f"give a multiple of {replicas}")
    steps = -(-len(split) // config.batch_size)

    def dataset_fn(context):
        per_replica = context.get_per_replica_batch_size(config.batch_size)
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        if config.verbose:
            frames = len(shard_indices(len(split), *shard))
            print(f"worker {shard[1] + 1}/{shard[0]}: reads {frames} of {len(split)} training frames per epoch "
                  f"({steps} steps, global batch {config.batch_size}, {per_replica} per replica)", file=sys.stderr)
        return split_dataset(split, norm, per_replica, augment=config.augment, shuffle=True, seed=config.seed,
                             shard=shard, repeat=True)

    return strategy.distribute_datasets_from_function(dataset_fn), steps


def make_schedule(name: str, lr: float, total_steps: int):
    """A learning rate, or a schedule that decays it over the whole run."""
    if name == "constant":
        return lr
    if name == "cosine":
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(1, total_steps), alpha=0.01)
    if name == "poly":
        return keras.optimizers.schedules.PolynomialDecay(lr, max(1, total_steps), lr * 0.01, power=0.9)
    raise UsageError(f"unknown --lr-schedule {name!r}; use one of {', '.join(LR_SCHEDULES)}")


def make_optimizer(name: str, lr, momentum: float, weight_decay: float, ema: float | None = None):
    decay = weight_decay or None
    averaging = {"use_ema": True, "ema_momentum": ema} if ema else {}
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr, momentum=momentum, weight_decay=decay, **averaging)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, weight_decay=decay, **averaging)
    raise UsageError(f"unknown --optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")


@contextlib.contextmanager
def averaged_weights(model):
    """Inside: the model holds its optimizer's moving average of the weights (--ema), if it keeps one; after:
    the raw weights again, so training goes on from them."""
    optimizer = getattr(model, "optimizer", None)
    if not getattr(optimizer, "use_ema", False) or not getattr(optimizer, "_model_variables_moving_average", None):
        yield
        return
    raw = [variable.numpy() for variable in model.trainable_variables]
    optimizer.finalize_variable_values(model.trainable_variables)
    try:
        yield
    finally:
        for variable, value in zip(model.trainable_variables, raw):
            variable.assign(value)


def metadata_for(config: ModelConfig, info: ClassInfo, norm: Normalization | None = None) -> ModelMetadata:
    return ModelMetadata(
        class_names=info.names, palette=info.palette, input_size=tuple(config.input_size),
        normalization=norm or Normalization(), ignore_label=info.ignore_label, arch=config.arch,
        alpha=config.alpha, unpool_mode=config.unpool_mode,
    )


class Checkpointer(keras.callbacks.Callback):
    """Validation mIoU into the logs, best.h5 when it improves, a resume point every epoch."""

    def __init__(self, out: Path, val: Split, info: ClassInfo, metadata: ModelMetadata,
                 best_miou: float, config: TrainConfig, log_rows: list[dict] | None = None):
        super().__init__()
        self.out, self.val, self.info, self.metadata = out, val, info, metadata
        self.best_miou, self.config = best_miou, config
        self.history: list[dict] = []  # this run's epochs (1-based), for TrainResult
        self.log_rows: list[dict] = list(log_rows or [])  # every epoch so far (0-based, as Keras logs them)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        with averaged_weights(self.model):
            miou = evaluate_miou(self.model, self.val, self.info, self.metadata.normalization, self.config.batch_size)
            improved = miou > self.best_miou
            if improved:
                self.best_miou = miou
                save_checkpoint(self.model, self.out / "best.h5", self.metadata)
        logs["val_miou"] = miou
        values = {k: float(v) for k, v in logs.items()}
        rows = [*self.log_rows, {"epoch": epoch, **values}]
        # The log first: a kill between the two leaves a row the resume point lacks, which --resume
        # rewrites; the other order could lose the row of an epoch that did commit.
        write_log(self.out / "log.csv", rows)
        save_resume_point(self.model, self.out, self.metadata, epoch + 1, self.best_miou, self.config, rows)
        self.log_rows = rows
        self.history.append({"epoch": epoch + 1, **values})
        if self.config.verbose:
            mark = " (best, saved)" if improved else ""
            print(f"epoch {epoch + 1}: val mIoU {miou:.4f}{mark}", file=sys.stderr)


def save_checkpoint(model, path: Path, metadata: ModelMetadata) -> None:
    save_model(model, path, metadata)


#: HDF5 group of last.h5 holding the resume state (epoch counter, best mIoU, optimizer variables).
RESUME_GROUP = "segnet_edge_resume"


def save_resume_point(model, out: Path, metadata: ModelMetadata, epochs_done: int, best_miou: float,
                      config: TrainConfig, log_rows: list[dict] | None = None) -> None:
    """Weights, optimizer state, counters and the epoch log in one file that appears with one rename.

    With separate files a kill between two renames would pair epoch N's counters with epoch N+1's
    weights (or log); here the resume point is always one complete epoch. train_state.json is a
    readable copy and log.csv is rewritten from the log stored here.
    """
    variables = [v.numpy() for v in model.optimizer.variables]

    def add_state(f) -> None:
        group = f.create_group(RESUME_GROUP)
        group.attrs["epochs_done"] = int(epochs_done)
        group.attrs["best_miou"] = float(best_miou)
        group.attrs["log"] = json.dumps(log_rows or [])
        for i, value in enumerate(variables):
            group.create_dataset(f"optimizer_{i}", data=value)

    save_model(model, out / "last.h5", metadata, extra_h5=add_state)
    state = {"epochs_done": epochs_done, "best_miou": best_miou, "config": config.to_json()}
    write_text_atomic(out / "train_state.json", json.dumps(state, indent=2))


def _restore(model, out: Path) -> tuple[int, float, list[dict]]:
    """Weights and optimizer state from last.h5; returns (epochs done, best validation mIoU, log rows)."""
    import h5py

    from segnet_edge.model_io import load_model

    last = out / "last.h5"
    if not last.is_file():
        raise UsageError(f"{out}: nothing to resume (no last.h5); start without --resume")
    saved = load_model(last)
    with h5py.File(last, "r") as f:
        group = f.get(RESUME_GROUP)
        if group is None:
            raise UsageError(f"{last}: holds no resume state (an older segnet-edge wrote it); start without --resume")
        epochs_done, best_miou = int(group.attrs["epochs_done"]), float(group.attrs["best_miou"])
        rows = [row for row in json.loads(group.attrs.get("log", "[]")) if int(row["epoch"]) < epochs_done]
        values = [group[f"optimizer_{i}"][()] for i in range(len(group))]
    model.set_weights(saved.get_weights())
    model.optimizer.build(model.trainable_variables)
    if len(values) == len(model.optimizer.variables):
        for variable, value in zip(model.optimizer.variables, values):
            variable.assign(value)
    return epochs_done, best_miou, rows


def write_log(path: Path, rows: list[dict]) -> None:
    """log.csv (one row per epoch, Keras' CSVLogger columns), rewritten whole and atomically: appending
    could leave a half row after a kill, or miss the row of an epoch whose checkpoint did commit."""
    import csv
    import io

    columns = ["epoch", *sorted({key for row in rows for key in row} - {"epoch"})]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, text.getvalue())


def train(config: TrainConfig) -> TrainResult:
    """Train a SegNet as `config` says; returns where the best checkpoint is and its mIoU."""
    from segnet_edge.data.pipeline import split_dataset
    from segnet_edge.losses import WeightedPixelCrossEntropy
    from segnet_edge.models import build_model

    if config.epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {config.epochs}")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.ema is not None and not 0.0 < config.ema < 1.0:
        raise UsageError(f"--ema must be a momentum between 0 and 1, e.g. 0.99 (got {config.ema:g})")
    if config.class_weight_power < 0:
        raise UsageError(f"--class-weight-power must be 0 or more (got {config.class_weight_power:g})")
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file; give a folder for --out")
    if config.freeze_encoder and not config.vgg_weights and not config.resume:
        raise UsageError("--freeze-encoder needs --vgg-weights (freezing a random encoder is pointless)")
    from segnet_edge.models import check_input_size

    if config.arch not in ARCHITECTURES:
        raise UsageError(f"unknown --arch {config.arch!r}; use one of {', '.join(ARCHITECTURES)}")
    check_input_size(tuple(config.input_size), 5 if config.arch == "segnet" else 4)
    keras.utils.set_random_seed(config.seed)
    data = prepare_data(config.data, tuple(config.input_size), config.classes, config.ignore_label,
                        config.val_split, config.on_bad_sample, config.class_balancing, config.verbose,
                        config.input_pipeline)
    model_config = ModelConfig(config.arch, tuple(config.input_size), data.info.num_classes, config.alpha,
                               config.unpool_mode)
    metadata = metadata_for(model_config, data.info)
    lr = config.lr if config.lr is not None else default_lr(config.arch, config.optimizer)
    class_weights = (data.class_weights ** np.float32(config.class_weight_power)).astype(np.float32)
    strategy = _strategy(config.strategy)
    total_steps = config.epochs * -(-len(data.train) // config.batch_size)
    with strategy.scope():
        model = build_model(model_config)
        if config.vgg_weights:
            from segnet_edge.vgg_init import load_vgg16_encoder

            load_vgg16_encoder(model, config.vgg_weights, freeze=config.freeze_encoder)
        model.compile(
            optimizer=make_optimizer(config.optimizer, make_schedule(config.lr_schedule, lr, total_steps),
                                     config.momentum, config.weight_decay, config.ema),
            loss=WeightedPixelCrossEntropy(class_weights, data.info.ignore_label),
        )
    # With several workers only the chief writes OUT. Saving a model reads its variables, which all-reduces
    # the synced-on-read ones (batch-norm statistics), so every worker must save alike: the others into a
    # folder of their own that is removed at the end (tf.distribute's advice for MultiWorkerMirroredStrategy).
    scratch = None if is_chief(strategy) else tempfile.TemporaryDirectory(prefix="segnet-edge-worker-")
    files = out if scratch is None else Path(scratch.name)  # removed when done, or at exit whatever happened
    files.mkdir(parents=True, exist_ok=True)
    initial_epoch, best_miou, log_rows = _restore(model, out) if config.resume else (0, -1.0, [])
    if initial_epoch >= config.epochs:
        raise UsageError(f"{out}: already trained {initial_epoch} epochs; raise --epochs to continue")
    write_log(files / "log.csv", log_rows)  # the log of the resume point, whatever a kill left in log.csv
    write_text_atomic(files / "train_config.json", json.dumps(config.to_json(), indent=2))
    steps_per_epoch = None
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        train_ds, steps_per_epoch = worker_dataset(strategy, data.train, metadata.normalization, config)
    else:
        train_ds = split_dataset(data.train, metadata.normalization, config.batch_size, augment=config.augment,
                                 shuffle=True, seed=config.seed)
    checkpointer = Checkpointer(files, data.val, data.info, metadata, best_miou, config, log_rows)
    callbacks = [checkpointer]
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        model.fit(train_ds, epochs=config.epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                  steps_per_epoch=steps_per_epoch,
                  verbose=config.verbose if sys.stderr.isatty() else (2 if config.verbose else 0))
    except KeyboardInterrupt:
        interrupted = True
        print(f"interrupted: the last complete epoch is saved in {out} (continue with --resume)", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
    epochs_done = checkpointer.history[-1]["epoch"] if checkpointer.history else initial_epoch
    result = TrainResult(str(out / "best.h5"), checkpointer.best_miou, epochs_done,
                         [float(w) for w in class_weights], checkpointer.history, interrupted)
    write_text_atomic(files / "train_result.json", json.dumps(result.to_json(), indent=2))
    if scratch is not None:
        scratch.cleanup()
    return result


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt
