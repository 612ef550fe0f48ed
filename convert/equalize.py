"""Activation equalization before int8: the same float function, finer int8 steps for quiet channels.

int8 gives a whole activation tensor one range, set by its loudest channel, so a
channel that peaks at 3% of that range keeps only ~8 of 255 steps, and SegNet's
pooling indices in such channels are decided by near-ties that rounding turns into
exact ties (convert/index_share.py measures it). ReLU, max pooling (values and
argmax) and unpooling all commute with a positive per-channel scale, so each
conv + BN + ReLU output channel c can be multiplied by s_c (BN's gamma and beta)
and every conv that reads it divided by s_c (its input-channel weights): in float
nothing changes, in int8 every channel spans more of the range. s_c = peak / peak_c
measured on the calibration frames, capped at `max_scale` so the consumer's
per-channel weight ranges are not swamped (after Nagel et al., "Data-Free
Quantization", 2019, applied to activations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_CONV, _POOL, _UNPOOL = "Conv2D", "MaxPoolingWithArgmax2D", "MaxUnpooling2D"


@dataclass(frozen=True)
class Equalization:
    layers: int  # ReLU outputs rescaled
    median_scale: float
    max_scale: float
    max_abs_change: float  # largest probability change of the float model on the frames
    #: argmax pixels of the float model kept: 1.0 in exact arithmetic; float32 rounding can flip a pooling
    #: near-tie (seen on random full-size weights: 99.9%), which parity then counts against the artifacts
    argmax_agreement: float

    def to_json(self) -> dict:
        return {"layers": self.layers, "median_scale": round(self.median_scale, 3),
                "max_scale": round(self.max_scale, 3), "max_abs_change": float(self.max_abs_change),
                "argmax_agreement": round(self.argmax_agreement, 6)}

    def line(self) -> str:
        return (f"activation equalization: {self.layers} conv+BN+ReLU outputs rescaled per channel (median "
                f"x{self.median_scale:.2f}, at most x{self.max_scale:.1f}) and their readers' weights divided back; "
                f"the float model keeps {100 * self.argmax_agreement:.2f}% of its argmax pixels (largest "
                f"probability change {self.max_abs_change:.1e})")


def _class(layer_config: dict) -> str:
    return layer_config["class_name"].split(">")[-1]


def _readers(config: dict) -> dict[tuple[str, int], list[dict]]:
    """(layer name, output index) -> the layer configs that take that tensor as an input."""
    readers: dict[tuple[str, int], list[dict]] = {}
    for layer in config["layers"]:
        for node in layer["inbound_nodes"]:
            for inbound in node:
                readers.setdefault((inbound[0], inbound[2]), []).append(layer)
    return readers


def _convs_reading(name: str, readers, depth: int = 0) -> list[str] | None:
    """The convs that read tensor `name`:0 through pooled values / unpooled values; None if anything else does."""
    found: list[str] = []
    for layer in readers.get((name, 0), []):
        kind = _class(layer)
        if kind == _CONV:
            found.append(layer["name"])
            continue
        values = layer["inbound_nodes"][0][0]
        if kind == _UNPOOL and (values[0], values[2]) != (name, 0):
            return None  # read as indices: not a values path
        if kind not in (_POOL, _UNPOOL) or depth > 4:
            return None
        deeper = _convs_reading(layer["name"], readers, depth + 1)
        if deeper is None:
            return None
        found += deeper
    return found or None


def _channel_peaks(probe, inputs: np.ndarray) -> list[np.ndarray]:
    """Per output of `probe`, each channel's maximum over `inputs`, one frame at a time: a full-size
    SegNet's 25 activations take ~250 MB per frame, so they are never held for all frames at once."""
    peaks: list[np.ndarray] | None = None
    for frame in inputs:
        outputs = probe(frame[None], training=False)
        outputs = outputs if isinstance(outputs, list) else [outputs]
        frame_peaks = [np.asarray(o).reshape(-1, o.shape[-1]).max(axis=0) for o in outputs]
        peaks = frame_peaks if peaks is None else [np.maximum(a, b) for a, b in zip(peaks, frame_peaks)]
    return peaks or []


def equalize_activations(model, inputs: np.ndarray, max_scale: float = 16.0):
    """A copy of `model` with equalized activation ranges, and what was done. `inputs`: preprocessed frames."""
    from segnet_edge._tf import keras
    from segnet_edge.layers import CUSTOM_OBJECTS

    config = model.get_config()
    readers = _readers(config)
    layers = {layer["name"]: layer for layer in config["layers"]}
    plan = []  # (ReLU, its BN, the convs reading it): models.py names a block X, X_bn, X_relu
    for name, layer in layers.items():
        bn = layers.get(name.removesuffix("_relu") + "_bn")
        if _class(layer) != "ReLU" or not name.endswith("_relu") or bn is None or _class(bn) != "BatchNormalization":
            continue
        convs = _convs_reading(name, readers)
        if convs and bn["config"].get("center", True) and bn["config"].get("scale", True):
            plan.append((name, bn["name"], convs))
    if not plan:
        return model, None
    twin = keras.Model.from_config(config, custom_objects=CUSTOM_OBJECTS)
    twin.set_weights(model.get_weights())
    peaks = _channel_peaks(keras.Model(model.input, [model.get_layer(relu).output for relu, _, _ in plan]), inputs)
    scales = []
    for (_, bn_name, convs), peak in zip(plan, peaks):
        scale = np.where(peak > 0, np.clip(peak.max() / np.maximum(peak, 1e-12), 1.0, max_scale), 1.0)
        scale = scale.astype(np.float32)
        bn = twin.get_layer(bn_name)
        gamma, beta, *stats = bn.get_weights()  # plan only holds BN layers with both (center and scale)
        bn.set_weights([gamma * scale, beta * scale, *stats])
        for conv_name in convs:
            conv = twin.get_layer(conv_name)
            kernel, *rest = conv.get_weights()
            conv.set_weights([kernel / scale[None, None, :, None], *rest])
        scales.append(scale)
    before = model.predict(inputs[:4], batch_size=1, verbose=0)
    after = twin.predict(inputs[:4], batch_size=1, verbose=0)
    every = np.concatenate(scales)
    return twin, Equalization(len(plan), float(np.median(every)), float(every.max()),
                              float(np.abs(before - after).max()),
                              float(np.mean(before.argmax(-1) == after.argmax(-1))))
