"""SegNet and SegNet-Basic as their authors define them (see SEGNET_REFERENCE.md).

Deliberate differences from the Caffe files, each for the edge:
- convolutions keep their bias before batch norm (Keras' VGG16 weights have
  one; a converter folds bias and BN into the conv anyway);
- the pixel-wise softmax is part of the model, so every artifact outputs
  probabilities and the device needs no extra op;
- layers are built for a static input size, which TFLite, ONNX and TensorRT want.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from segnet_edge._tf import keras
from segnet_edge.layers import LocalResponseNormalization, MaxPoolingWithArgmax2D, MaxUnpooling2D
from segnet_edge.vocabulary import ARCHITECTURES

#: VGG16's encoder: (block, filters, convs). Layer names match keras.applications.VGG16.
VGG16_BLOCKS = ((1, 64, 2), (2, 128, 2), (3, 256, 3), (4, 512, 3), (5, 512, 3))


@dataclass(frozen=True)
class ModelConfig:
    """What a SegNet is built from; stored in the model file's metadata."""

    arch: str = "segnet"
    input_size: tuple[int, int] = (360, 480)
    num_classes: int = 11
    alpha: float = 1.0
    unpool_mode: str = "onehot"
    #: Output channels per conv layer name where they differ from alpha's (a channel-pruned model,
    #: segnet_edge.optimize.channels); None: every layer as alpha makes it.
    widths: dict[str, int] | None = None

    def to_json(self) -> dict:
        return asdict(self)


def config_from_metadata(metadata, **changes) -> ModelConfig:
    """The ModelConfig a model file's metadata describes (a rebuild: another input size or unpool mode)."""
    config = ModelConfig(arch=metadata.arch, input_size=tuple(metadata.input_size), num_classes=metadata.num_classes,
                         alpha=metadata.alpha, unpool_mode=metadata.unpool_mode,
                         widths=dict(metadata.widths) if getattr(metadata, "widths", None) else None)
    return replace(config, **changes)


def _width(filters: int, alpha: float, name: str = "", widths: dict[str, int] | None = None) -> int:
    """A conv's output channels: its entry in `widths` (a channel-pruned model), else filters x alpha."""
    if widths and name in widths:
        return int(widths[name])
    return max(4, int(round(filters * alpha)))


def _conv_bn(x, filters: int, kernel: int, name: str, relu: bool = True, weight_decay: float = 0.0):
    regularizer = keras.regularizers.l2(weight_decay) if weight_decay else None
    x = keras.layers.Conv2D(
        filters, kernel, padding="same", kernel_initializer="he_normal", kernel_regularizer=regularizer, name=name
    )(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if relu:
        x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return x


def check_input_size(input_size: tuple[int, int], levels: int) -> None:
    """Each pooling level needs at least a 2x2 map, so the input needs 2**levels pixels."""
    from segnet_edge.errors import UsageError

    minimum = 2**levels
    height, width = input_size
    if height < minimum or width < minimum:
        raise UsageError(
            f"input size {height}x{width} is too small for {levels} pooling levels; "
            f"use at least {minimum}x{minimum} (--input-size)"
        )


def build_segnet(
    input_size: tuple[int, int] = (360, 480),
    num_classes: int = 11,
    alpha: float = 1.0,
    unpool_mode: str = "onehot",
    weight_decay: float = 0.0,
    widths: dict[str, int] | None = None,
) -> keras.Model:
    """VGG16 encoder (13 conv + BN + ReLU, 5 argmax pools), mirrored decoder, softmax."""
    check_input_size(input_size, len(VGG16_BLOCKS))
    inputs = keras.Input((*input_size, 3), name="image")
    x = inputs
    skips = []
    for block, filters, convs in VGG16_BLOCKS:
        for conv in range(1, convs + 1):
            name = f"block{block}_conv{conv}"
            x = _conv_bn(x, _width(filters, alpha, name, widths), 3, name, weight_decay=weight_decay)
        size = tuple(x.shape[1:3])
        x, indices = MaxPoolingWithArgmax2D(name=f"block{block}_pool")(x)
        skips.append((block, size, indices))
    # Decoder: each block's last conv reduces to the next (shallower) level's width;
    # the very last conv (conv1_1_D) gives the class scores with no BN and no ReLU.
    level_filters = [filters for _, filters, _ in VGG16_BLOCKS]
    for (block, size, indices), (_, filters, convs) in zip(reversed(skips), reversed(VGG16_BLOCKS)):
        x = MaxUnpooling2D(size, mode=unpool_mode, name=f"block{block}_unpool")([x, indices])
        for conv in range(convs, 0, -1):
            name = f"block{block}_conv{conv}_D"
            if block == 1 and conv == 1:
                x = keras.layers.Conv2D(
                    num_classes, 3, padding="same", kernel_initializer="he_normal", name=name
                )(x)
            else:
                out = level_filters[block - 2] if conv == 1 else filters
                x = _conv_bn(x, _width(out, alpha, name, widths), 3, name, weight_decay=weight_decay)
    outputs = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="segnet")


def build_segnet_basic(
    input_size: tuple[int, int] = (360, 480),
    num_classes: int = 11,
    alpha: float = 1.0,
    unpool_mode: str = "onehot",
    weight_decay: float = 0.0,
    widths: dict[str, int] | None = None,
) -> keras.Model:
    """Input LRN, 4 x (conv 7x7 + BN + ReLU + pool), 4 x (unpool + conv 7x7 + BN), 1x1 classifier."""
    levels = 4
    check_input_size(input_size, levels)
    inputs = keras.Input((*input_size, 3), name="image")
    x = LocalResponseNormalization(name="norm")(inputs)
    skips = []
    for level in range(1, levels + 1):
        x = _conv_bn(x, _width(64, alpha, f"conv{level}", widths), 7, f"conv{level}", weight_decay=weight_decay)
        size = tuple(x.shape[1:3])
        x, indices = MaxPoolingWithArgmax2D(name=f"pool{level}")(x)
        skips.append((level, size, indices))
    for level, size, indices in reversed(skips):
        x = MaxUnpooling2D(size, mode=unpool_mode, name=f"upsample{level}")([x, indices])
        x = _conv_bn(x, _width(64, alpha, f"conv_decode{level}", widths), 7, f"conv_decode{level}", relu=False,
                     weight_decay=weight_decay)
    x = keras.layers.Conv2D(num_classes, 1, kernel_initializer="he_normal", name="conv_classifier")(x)
    outputs = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, outputs, name="segnet_basic")


_BUILDERS = {"segnet": build_segnet, "segnet-basic": build_segnet_basic}


def build_model(config: ModelConfig, weight_decay: float = 0.0) -> keras.Model:
    """Build the architecture that `config` names."""
    from segnet_edge.errors import UsageError

    if config.arch not in _BUILDERS:
        raise UsageError(f"unknown architecture {config.arch!r}; use one of {', '.join(ARCHITECTURES)}")
    if not config.alpha > 0:
        raise UsageError(f"alpha must be positive, got {config.alpha}")
    if config.num_classes < 2:
        raise UsageError(f"need at least 2 classes, got {config.num_classes}")
    return _BUILDERS[config.arch](
        input_size=tuple(config.input_size),
        num_classes=config.num_classes,
        alpha=config.alpha,
        unpool_mode=config.unpool_mode,
        weight_decay=weight_decay,
        widths=config.widths,
    )


def with_unpool_mode(model: keras.Model, mode: str) -> keras.Model:
    """The same network and weights with another unpooling formulation (an exporter's choice)."""
    return _with_layer_setting(model, "MaxUnpooling2D", "mode", mode)


def with_index_dtype(model: keras.Model, index_dtype: str) -> keras.Model:
    """The same network and weights with its pooling indices stored as `index_dtype` (layers.INDEX_DTYPES)."""
    return _with_layer_setting(model, "MaxPoolingWithArgmax2D", "index_dtype", index_dtype)


def _with_layer_setting(model: keras.Model, class_name: str, key: str, value) -> keras.Model:
    """`model` itself when every `class_name` layer already has `key` = `value`, else a rebuilt twin that has."""
    config = model.get_config()
    changed = False
    for layer in config["layers"]:
        if layer["class_name"].endswith(class_name) and layer["config"].get(key) != value:
            layer["config"][key] = value
            changed = True
    return _rebuilt(model, config) if changed else model


def _rebuilt(model: keras.Model, config: dict) -> keras.Model:
    """A model built from an edited `config` of `model`, holding `model`'s weights (same layers, same order)."""
    from segnet_edge.layers import CUSTOM_OBJECTS

    clone = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
    clone.set_weights(model.get_weights())
    return clone


def with_label_output(model: keras.Model) -> keras.Model:
    """The same network ending in a uint8 (N, H, W) label map instead of class probabilities.

    The argmax is taken on the softmax's input (the class scores): softmax is monotonic, so the
    winner is the same, and the exported graph loses the softmax as well as the board's argmax.
    """
    from segnet_edge.layers import ClassLabels

    scores = model.output
    for layer in reversed(model.layers):
        inner = getattr(layer, "layer", layer)  # through tfmot's QuantizeWrapper
        if isinstance(inner, keras.layers.Softmax) and layer.output is model.output:
            scores = layer.input
            break
    return keras.Model(model.input, ClassLabels(name="labels")(scores), name=model.name)


def drop_input_lrn(model: keras.Model):
    """SegNet-Basic without its input LRN layer (same weights), and that layer's settings (None: it has none).

    The LRN is a fixed function of each pixel's three channels, so the board's preprocessing applies it
    (`Normalization.lrn`) and every exported graph starts after it: TFLite has no int8 LRN kernel, and
    the float input it left in SegNet-Basic's int8 model made that model not full-integer. tfmot's wrapped
    LRN is refused: a QAT graph's input range belongs to it (`segnet-edge quantize` drops the LRN first).
    """
    from segnet_edge.device.metadata import InputLRN

    lrn = next((layer for layer in model.layers if isinstance(getattr(layer, "layer", layer),
                                                              LocalResponseNormalization)), None)
    if lrn is None:
        return model, None
    if not isinstance(lrn, LocalResponseNormalization) or lrn.input is not model.input:
        raise ValueError(f"{model.name}: the LRN layer {lrn.name!r} is not the plain first layer; quantize "
                         "the float model again with this segnet-edge")
    config = model.get_config()
    image = config["input_layers"][0][0]
    config["layers"] = [layer for layer in config["layers"] if layer["name"] != lrn.name]
    for layer in config["layers"]:  # whoever read the LRN's output reads the image instead
        for node in layer["inbound_nodes"]:
            for inbound in node:
                if inbound[0] == lrn.name:
                    inbound[0] = image
    return _rebuilt(model, config), InputLRN(lrn.size, lrn.alpha, lrn.beta, lrn.k)  # the LRN has no weights


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one frame: convolutions only (everything else is noise)."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw, c_in, _ = layer.kernel.shape
            macs += int(h) * int(w) * int(c_out) * int(kh) * int(kw) * int(c_in)
    return macs
