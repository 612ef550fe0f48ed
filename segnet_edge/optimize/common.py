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


def check_dataset_matches(info: ClassInfo, metadata: ModelMetadata, data: str) -> None:
    """Fine-tuning on a dataset with other classes would silently relabel the model; refuse it."""
    if info.num_classes != metadata.num_classes:
        raise UsageError(f"{data}: has {info.num_classes} classes but the model predicts {metadata.num_classes}; "
                         "fine-tune on the dataset the model was trained on (or pass its --classes file)")
