"""What pruning and quantization both need: the float model to start from, and a dataset that fits it."""

from __future__ import annotations

from segnet_edge.data.layout import ClassInfo
from segnet_edge.device.errors import UsageError
from segnet_edge.device.metadata import ModelMetadata


def is_quantization_aware(model) -> bool:
    """Whether tfmot's quantize wrappers are in the model (a QAT model)."""
    return any(type(layer).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")
               for layer in model.layers)


def load_float_model(path: str, unsafe: bool, verb: str):
    """(model, metadata) of a float segnet-edge model; one-line errors for anything else.

    The metadata is read first (h5py only), so a missing file or a foreign model is
    refused before TensorFlow deserialises anything.
    """
    from segnet_edge.model_io import load_model, read_metadata

    metadata = read_metadata(path)
    model = load_model(path, unsafe=unsafe)
    if is_quantization_aware(model):
        hint = ("prune the float model, then quantize the pruned one" if verb == "prune"
                else "it is already quantization-aware; convert it, or quantize its float parent")
        raise UsageError(f"{path}: is a quantization-aware model; {hint}")
    if not model.layers or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UsageError(f"{path}: expected one image input and one output; is it a segnet-edge model?")
    return model, metadata


def without_input_lrn(model, metadata: ModelMetadata):
    """(model, metadata) with a SegNet-Basic's input LRN moved from the graph into the preprocessing."""
    from dataclasses import replace

    from segnet_edge.models import drop_input_lrn

    model, lrn = drop_input_lrn(model)
    if lrn is None:
        return model, metadata
    return model, replace(metadata, normalization=replace(metadata.normalization, lrn=lrn))


def check_dataset_matches(info: ClassInfo, metadata: ModelMetadata, data: str) -> None:
    """Fine-tuning on a dataset with other classes would silently relabel the model; refuse it."""
    if info.num_classes != metadata.num_classes:
        raise UsageError(f"{data}: has {info.num_classes} classes but the model predicts {metadata.num_classes}; "
                         "fine-tune on the dataset the model was trained on (or pass its --classes file)")


def start_finetuning(config, verb: str):
    """What prune and QAT do first: seed, load the float model, load its dataset and check they fit.

    Returns (model, metadata, data, fine-tuning dataset, steps per epoch).
    """
    import math

    from segnet_edge._tf import keras
    from segnet_edge.data.pipeline import split_dataset
    from segnet_edge.train import prepare_data

    keras.utils.set_random_seed(config.seed)
    model, metadata = load_float_model(config.model, config.unsafe_load, verb)
    if verb == "quantize":  # the QAT graph starts after SegNet-Basic's input LRN, as its int8 artifacts will
        model, metadata = without_input_lrn(model, metadata)
    data = prepare_data(config.data, metadata.input_size, config.classes, config.ignore_label,
                        config.val_split, config.on_bad_sample, verbose=config.verbose)
    check_dataset_matches(data.info, metadata, config.data)
    train_ds = split_dataset(data.train, metadata.normalization, config.batch_size,
                             augment=config.augment, shuffle=True, seed=config.seed)
    return model, metadata, data, train_ds, math.ceil(len(data.train) / config.batch_size)


def history_rows(history: dict) -> list[dict]:
    """Keras' {metric: [per epoch]} as [{metric: value} per epoch] for the JSON reports."""
    return [{k: float(v[i]) for k, v in history.items()} for i in range(len(next(iter(history.values()), [])))]


def finetune(model, train_ds, data, config, steps_per_epoch: int, callbacks: list | None = None) -> dict:
    """Compile `model` with the config's optimiser, decaying learning rate and the pixel loss, and fit it
    for `config.epochs`: the fine-tuning QAT and channel pruning share. Returns Keras' history."""
    from segnet_edge.losses import WeightedPixelCrossEntropy
    from segnet_edge.train import make_optimizer, make_schedule

    steps = steps_per_epoch * config.epochs
    model.compile(optimizer=make_optimizer(config.optimizer, make_schedule(config.lr_schedule, config.lr, steps), 0.9,
                                           0.0),
                  loss=WeightedPixelCrossEntropy(data.class_weights, data.info.ignore_label))
    return model.fit(train_ds, epochs=config.epochs, verbose=2 if config.verbose else 0,
                     callbacks=list(callbacks or [])).history
