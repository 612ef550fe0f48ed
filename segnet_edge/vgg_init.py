"""Initialise SegNet's encoder from a local VGG16 ImageNet weights file (no download at run time).

The file is what `keras.applications.VGG16(include_top=False).save_weights(path)`
writes (e.g. vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5): one HDF5 group
per layer, named block{b}_conv{c}, each holding a kernel and a bias.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from segnet_edge.device.errors import UsageError
from segnet_edge.models import VGG16_BLOCKS

ENCODER_LAYERS = tuple(f"block{b}_conv{c}" for b, _, n in VGG16_BLOCKS for c in range(1, n + 1))


def _read_vgg16_weights(path: Path) -> dict[str, list[np.ndarray]]:
    import h5py

    if not path.is_file():
        raise UsageError(f"{path}: no such VGG16 weights file; download "
                         "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5 once and pass its path")
    try:
        with h5py.File(path, "r") as f:
            root = f["model_weights"] if "model_weights" in f else f
            weights = {}
            for name in ENCODER_LAYERS:
                if name not in root:
                    raise UsageError(f"{path}: has no layer {name!r}; give a Keras VGG16 (include_top=False) "
                                     "weights file")
                group = root[name]
                names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs.get("weight_names", [])]
                if len(names) != 2:
                    raise UsageError(f"{path}: layer {name!r} holds {len(names)} weights, not kernel + bias; "
                                     "give a Keras VGG16 (include_top=False) weights file")
                arrays = [np.asarray(group[n]) for n in names]
                weights[name] = arrays
            return weights
    except OSError as exc:
        raise UsageError(f"{path}: not an HDF5 weights file ({exc}); give a Keras VGG16 weights .h5") from None


def load_vgg16_encoder(model, path: str | Path, freeze: bool = False) -> int:
    """Copy VGG16 conv kernels and biases into the encoder; returns the layers loaded."""
    path = Path(path)
    weights = _read_vgg16_weights(path)
    loaded = 0
    for name in ENCODER_LAYERS:
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise UsageError(f"model has no layer {name!r}: VGG16 initialisation needs --arch segnet") from None
        expected = [tuple(w.shape) for w in layer.get_weights()]
        given = [tuple(w.shape) for w in weights[name]]
        if expected != given:
            raise UsageError(
                f"{path}: {name} has shapes {given} but the model needs {expected}; VGG16 weights "
                "fit only --alpha 1.0"
            )
        layer.set_weights(weights[name])
        if freeze:
            layer.trainable = False
            try:
                model.get_layer(f"{name}_bn").trainable = False
            except ValueError:
                pass
        loaded += 1
    return loaded
