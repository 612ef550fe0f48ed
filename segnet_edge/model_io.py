"""Save and load segnet-edge Keras models with their metadata, safely.

`.h5`: metadata is an HDF5 attribute; before anything is deserialised the stored
model config is checked so that a `Lambda` layer or an unknown class cannot run
code. `.keras`: Keras' safe mode does the same; metadata is one more zip entry.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

from segnet_edge.device.metadata import METADATA_KEY, ModelMetadata
from segnet_edge.errors import ModelFileError

MODEL_SUFFIXES = (".h5", ".keras")
_KERAS_ZIP_ENTRY = "segnet_edge.json"


def _check_suffix(path: Path) -> None:
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: not a Keras model file; give a .h5 or .keras file written by segnet-edge")


def save_model(model, path: str | Path, metadata: ModelMetadata, include_optimizer: bool = False) -> Path:
    """Write `model` + `metadata` to `path` atomically."""
    import h5py

    from segnet_edge.atomic import atomic_path

    path = Path(path)
    _check_suffix(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras nags that HDF5 is legacy; it is what users ship
        if path.suffix == ".h5":
            model.save(tmp, include_optimizer=include_optimizer)
        else:
            model.save(tmp)
        if path.suffix == ".h5":
            with h5py.File(tmp, "a") as f:
                f.attrs[METADATA_KEY] = metadata.dumps()
        else:
            with zipfile.ZipFile(tmp, "a") as z:
                z.writestr(_KERAS_ZIP_ENTRY, metadata.dumps())
    return path


def read_metadata(path: str | Path) -> ModelMetadata:
    """The segnet-edge metadata stored in a model file, without loading TensorFlow."""
    path = Path(path)
    _check_exists(path)
    _check_suffix(path)
    text = None
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get(METADATA_KEY)
        else:
            with zipfile.ZipFile(path) as z:
                if _KERAS_ZIP_ENTRY in z.namelist():
                    text = z.read(_KERAS_ZIP_ENTRY)
    except (OSError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelFileError(f"{path}: unreadable model file ({_short(exc)}); re-export it with segnet-edge") from None
    if text is None:
        raise ModelFileError(
            f"{path}: not a segnet-edge model (no {METADATA_KEY} metadata); train it with `segnet-edge train`"
        )
    try:
        return ModelMetadata.loads(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: corrupt segnet-edge metadata ({_short(exc)}); re-export the model") from None


def _check_exists(path: Path) -> None:
    if not path.exists():
        raise ModelFileError(f"{path}: no such model file; check the path")
    if not path.is_file():
        raise ModelFileError(f"{path}: is not a file; give a .h5 or .keras model file")


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _stored_config(path: Path) -> dict:
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
    else:
        with zipfile.ZipFile(path) as z:
            raw = z.read("config.json") if "config.json" in z.namelist() else None
    if raw is None:
        raise ModelFileError(f"{path}: holds weights only, no model; save the whole model")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


#: tfmot classes a quantization-aware (QAT) model file may name: layers, their quantize configs and
#: quantizers. Their code ships with tfmot; the file only holds their settings.
QAT_LAYER_CLASSES = frozenset({"QuantizeLayer", "QuantizeWrapper", "QuantizeWrapperV2"})
QAT_SETTING_CLASSES = frozenset({
    "Default8BitQuantizeConfig", "Default8BitConvQuantizeConfig", "Default8BitOutputQuantizeConfig",
    "Default8BitConvTransposeQuantizeConfig", "NoOpQuantizeConfig", "AllValuesQuantizer", "LastValueQuantizer",
    "MovingAverageQuantizer", "SameScaleQuantizeConfig", "OutputQuantizeConfig",
    "segnet_edge>SameScaleQuantizeConfig", "segnet_edge>OutputQuantizeConfig",
})


def _layer_classes(config: dict) -> list[tuple[str, str]]:
    """(layer name, class name) of every layer, nested models and wrapped layers (tfmot's wrappers) included."""
    found = []
    for layer in config.get("config", {}).get("layers", []):
        found.append((layer.get("config", {}).get("name", "?"), layer.get("class_name", "?")))
        inner = layer.get("config", {}).get("layer") if isinstance(layer.get("config"), dict) else None
        while isinstance(inner, dict):  # a wrapper: check what it wraps too
            found.append((inner.get("config", {}).get("name", "?"), inner.get("class_name", "?")))
            inner = inner.get("config", {}).get("layer") if isinstance(inner.get("config"), dict) else None
        if isinstance(layer.get("config"), dict) and "layers" in layer["config"]:
            found.extend(_layer_classes(layer))
    return found


def _qat_setting_classes(config: dict) -> list[tuple[str, str]]:
    """(layer name, class name) of every quantize config and quantizer a QAT model's layers name."""
    found = []
    for layer in config.get("config", {}).get("layers", []):
        layer_config = layer.get("config", {}) if isinstance(layer.get("config"), dict) else {}
        for key in ("quantize_config", "quantizer"):
            value = layer_config.get(key)
            if isinstance(value, dict):
                found.append((layer_config.get("name", "?"), value.get("class_name", "?")))
        if "layers" in layer_config:
            found.extend(_qat_setting_classes(layer))
    return found


def is_quantization_aware_config(config: dict) -> bool:
    return any(class_name in QAT_LAYER_CLASSES for _, class_name in _layer_classes(config))


def check_safe(path: Path) -> None:
    """Refuse a model whose config names a Lambda or a class outside Keras and segnet-edge."""
    from segnet_edge._tf import keras
    from segnet_edge.layers import CUSTOM_OBJECTS

    config = _stored_config(path)
    allowed = set(CUSTOM_OBJECTS) | {"Functional", "Sequential", "Model"} | QAT_LAYER_CLASSES
    for layer_name, class_name in _qat_setting_classes(config):
        if class_name not in QAT_SETTING_CLASSES:
            raise ModelFileError(
                f"{path}: layer {layer_name!r} names quantization class {class_name!r}, which is neither tfmot's "
                "nor segnet-edge's; refused (pass --unsafe-load only if you trust the file)"
            )
    for layer_name, class_name in _layer_classes(config):
        if class_name == "Lambda":
            raise ModelFileError(
                f"{path}: layer {layer_name!r} is a Lambda, which runs code from the file; "
                "refused (pass --unsafe-load only if you trust the file)"
            )
        if class_name not in allowed and not hasattr(keras.layers, class_name):
            raise ModelFileError(
                f"{path}: layer {layer_name!r} has class {class_name!r}, which is neither Keras' nor "
                "segnet-edge's; refused (pass --unsafe-load only if you trust the file)"
            )


def load_model(path: str | Path, unsafe: bool = False, compile: bool = False):
    """Load a segnet-edge model; returns the Keras model (metadata: `read_metadata`)."""
    path = Path(path)
    read_metadata(path)  # existence, suffix and "is ours" checks, before TensorFlow
    from segnet_edge._tf import keras
    from segnet_edge.layers import CUSTOM_OBJECTS

    try:
        if not unsafe:
            check_safe(path)
        kwargs = {"safe_mode": not unsafe} if path.suffix == ".keras" else {}
        if is_quantization_aware_config(_stored_config(path)):
            # A QAT model (segnet-edge quantize): tfmot's wrappers, configs and quantizers, plus ours.
            from segnet_edge.optimize.quantize_configs import QUANTIZE_CUSTOM_OBJECTS, quantize_scope

            with quantize_scope():
                return keras.models.load_model(path, custom_objects=QUANTIZE_CUSTOM_OBJECTS, compile=compile,
                                               **kwargs)
        return keras.models.load_model(path, custom_objects=CUSTOM_OBJECTS, compile=compile, **kwargs)
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any deserialisation failure is a bad file to the user
        raise ModelFileError(f"{path}: cannot load the model ({_short(exc)}); re-export it with segnet-edge") from None
