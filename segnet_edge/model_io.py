"""Save and load segnet-edge Keras models with their metadata, safely.

`.h5`: metadata is an HDF5 attribute; before anything is deserialised the stored
model config is checked so that a `Lambda` layer or an unknown class cannot run
code. `.keras`: Keras' safe mode does the same; metadata is one more zip entry.

Both are sealed as the board's artifacts are (segnet_edge.device.integrity): the
metadata records the SHA-256 of the file (`.h5`) or of its entries (`.keras`, see
`_payload_parts`), and `load_model` compares it before Keras reads a weight.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from segnet_edge.device import integrity
from segnet_edge.device.errors import IntegrityError
from segnet_edge.device.metadata import METADATA_KEY, ModelMetadata
from segnet_edge.errors import ModelFileError
from segnet_edge.vocabulary import MODEL_SUFFIXES

_KERAS_ZIP_ENTRY = "segnet_edge.json"
#: What to do about a Keras file whose digest does not match, or that has none.
_REMEDY = "copy it again from where it was trained, or train / prune / quantize it again"
_RENEW = "save it again with segnet-edge (segnet_edge.model_io.save_model)"


def _check_suffix(path: Path) -> None:
    if path.suffix not in MODEL_SUFFIXES:
        raise ModelFileError(f"{path}: not a Keras model file; give a .h5 or .keras file written by segnet-edge")


def save_model(model, path: str | Path, metadata: ModelMetadata, include_optimizer: bool = False,
               extra_h5: Callable[[Any], None] | None = None) -> Path:
    """Write `model` + `metadata` to `path` atomically.

    `.h5` files are built in memory and written to disk by Python: HDF5 dies with SIGSEGV when a
    write fails under it (a full disk, a file-size limit; found by tests/reliability), whereas a
    Python write raises OSError, which atomic_path turns into one line. `extra_h5(h5py.File)` adds
    more to the file before it appears under its name, so everything in it commits with one rename
    (training stores its resume state this way).
    """
    import h5py

    from segnet_edge.atomic import atomic_path

    path = Path(path)
    _check_suffix(path)
    if extra_h5 is not None and path.suffix != ".h5":
        raise ModelFileError(f"{path}: extra HDF5 content needs a .h5 file")
    blank = integrity.for_writing(metadata).dumps()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras nags that HDF5 is legacy; it is what users ship
        if path.suffix == ".h5":
            image = io.BytesIO()
            with h5py.File(image, "w") as f:
                model.save(f, include_optimizer=include_optimizer)
                f.attrs[METADATA_KEY] = blank
                if extra_h5 is not None:
                    extra_h5(f)
            with atomic_path(path) as tmp:
                tmp.write_bytes(integrity.seal([image.getvalue()])[0])
        else:
            with atomic_path(path) as tmp:
                model.save(tmp)
                entry = blank.encode()
                sealed = integrity.seal([*_payload_parts(tmp), *_entry_parts(_KERAS_ZIP_ENTRY, entry)])[-1]
                with zipfile.ZipFile(tmp, "a") as z:
                    z.writestr(_KERAS_ZIP_ENTRY, sealed)
    return path


def _entry_parts(name: str, content: bytes) -> list[bytes]:
    return [name.encode(), len(content).to_bytes(8, "little"), content]


def _payload_parts(path: Path) -> list[bytes]:
    """What the digest covers: a `.h5` file whole; a `.keras` zip's entries (name, length, content, in the
    archive's order), since an entry's CRC-32 would change with the digest written into it."""
    if path.suffix == ".h5":
        return [path.read_bytes()]
    parts: list[bytes] = []
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            parts += _entry_parts(info.filename, z.read(info))
    return parts


def verify_model_file(path: str | Path, metadata: ModelMetadata | None = None) -> None:
    """IntegrityError (one line) when the file does not match the digest it records; a warning without one."""
    path = Path(path)
    metadata = metadata or read_metadata(path)
    try:
        parts = _payload_parts(path)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it ({_short(exc)}); check the file") from None
    except Exception as exc:  # noqa: BLE001 - a bad CRC-32, a broken deflate stream: damage, as a mismatch is
        raise IntegrityError(f"{path}: damaged ({_short(exc)}); {_REMEDY}") from None
    integrity.check(path, parts, metadata.payload_sha256, remedy=_REMEDY, renew=_RENEW)


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
    except Exception as exc:  # noqa: BLE001 - h5py / zipfile raise many types on damaged bytes
        raise _unreadable(path, exc) from None
    return _parse_metadata(path, text)


@dataclass(frozen=True)
class StoredModel:
    """What a model file says about itself before TensorFlow loads it, read once (`read_stored`): whoever
    decides by it (load_model, convert) asks this instead of opening the file again."""

    path: Path
    metadata: ModelMetadata
    config: dict | None  # the stored Keras model config; None: none readable (load_model says why)
    #: a QAT .h5 whose learnt activation ranges are all int8 with zero point 0 (see qat_activation_ranges_symmetric)
    qat_symmetric: bool = False

    @property
    def qat(self) -> bool:
        """tfmot's QAT wrappers in the stored config."""
        return self.config is not None and is_quantization_aware_config(self.config)

    @property
    def input_lrn(self):
        """The settings of a plain input LRN layer (see stored_input_lrn), or None."""
        return None if self.config is None else _input_lrn(self.config)

    @property
    def layer_names(self) -> list[str]:
        """The stored model's layer names, in order (empty when no config is readable)."""
        layers = (self.config or {}).get("config", {}).get("layers", [])
        return [layer.get("config", {}).get("name") or layer.get("name", "?") for layer in layers]


def read_stored(path: str | Path) -> StoredModel:
    """The metadata, model config and (QAT .h5) range symmetry of a model file, from one opening, without
    TensorFlow. Fails as read_metadata does; an unreadable config is left for load_model to report."""
    path = Path(path)
    _check_exists(path)
    _check_suffix(path)
    text = config = None
    symmetric = False
    try:
        if path.suffix == ".h5":
            import h5py

            with h5py.File(path, "r") as f:
                text = f.attrs.get(METADATA_KEY)
                config = _config_or_none(lambda: f.attrs.get("model_config"))
                if config is not None and is_quantization_aware_config(config):
                    symmetric = _ranges_symmetric(f)
        else:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                if _KERAS_ZIP_ENTRY in names:
                    text = z.read(_KERAS_ZIP_ENTRY)
                config = _config_or_none(lambda: z.read("config.json") if "config.json" in names else None)
    except Exception as exc:  # noqa: BLE001 - as read_metadata
        raise _unreadable(path, exc) from None
    return StoredModel(path, _parse_metadata(path, text), config, symmetric)


def _unreadable(path: Path, exc: BaseException) -> ModelFileError:
    return ModelFileError(f"{path}: unreadable model file ({_short(exc)}); re-export it with segnet-edge")


def _parse_metadata(path: Path, text) -> ModelMetadata:
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
    return _decode_config(raw)


def _decode_config(raw) -> dict:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    return json.loads(raw)


def _config_or_none(read: Callable[[], object]) -> dict | None:
    """The config `read` returns, decoded; None when there is none or it does not read (load_model reports it)."""
    try:
        raw = read()
        return None if raw is None else _decode_config(raw)
    except Exception:  # noqa: BLE001 - damaged bytes come as many types
        return None


#: tfmot classes a quantization-aware (QAT) model file may name: layers, their quantize configs and
#: quantizers. Their code ships with tfmot; the file only holds their settings.
QAT_LAYER_CLASSES = frozenset({"QuantizeLayer", "QuantizeWrapper", "QuantizeWrapperV2"})
QAT_SETTING_CLASSES = frozenset({
    "Default8BitQuantizeConfig", "Default8BitConvQuantizeConfig", "Default8BitOutputQuantizeConfig",
    "Default8BitConvTransposeQuantizeConfig", "NoOpQuantizeConfig", "AllValuesQuantizer", "LastValueQuantizer",
    "MovingAverageQuantizer", "SameScaleQuantizeConfig", "OutputQuantizeConfig",
    "segnet_edge>SameScaleQuantizeConfig", "segnet_edge>OutputQuantizeConfig",
})


#: Keys under which a serialised config holds a layer (nested models, wrappers such as TimeDistributed and
#: Bidirectional). Every object found under one of them must be a layer class we know.
_LAYER_KEYS = frozenset({"layers", "layer", "forward_layer", "backward_layer"})
#: Keys under which a QAT model holds tfmot quantize configs and quantizers.
_QAT_SETTING_KEYS = frozenset({"quantize_config", "quantizer"})
#: Python modules a serialised object may name: Keras itself, tfmot and segnet-edge. A config that names any
#: other module (`builtins`, `os`, `__main__`) asks the loader to import or call code from outside them.
_TRUSTED_MODULES = ("keras", "tf_keras", "tensorflow", "tensorflow_model_optimization", "segnet_edge")


def _serialised_objects(node, key: str | None = None) -> list[tuple[str | None, dict]]:
    """(key it sits under, object) for every serialised object (a dict with a class_name) anywhere in `node`.

    The whole tree is walked, not just `config.layers`: a Lambda nested in a Sequential inside a
    TimeDistributed wrapper, or hidden as a Bidirectional's backward_layer, deserialises (and runs) too.
    """
    found: list[tuple[str | None, dict]] = []
    stack: list[tuple[str | None, object]] = [(key, node)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                found.append((where, item))
            stack.extend((k, v) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((where, v) for v in item)
    return found


def _layer_classes(config: dict) -> list[tuple[str, str]]:
    """(layer name, class name) of every layer: nested models and wrapped layers included."""
    return [(_name_of(obj), str(obj.get("class_name"))) for where, obj in _serialised_objects(config)
            if where in _LAYER_KEYS]


def _name_of(obj: dict) -> str:
    config = obj.get("config")
    return str(config.get("name", "?")) if isinstance(config, dict) else "?"


def is_quantization_aware_config(config: dict) -> bool:
    return any(class_name in QAT_LAYER_CLASSES for _, class_name in _layer_classes(config))


def stored_input_lrn(path: str | Path):
    """The settings of a plain (not QAT-wrapped) input LRN layer in a model file, read without TensorFlow:
    a converted SegNet-Basic applies it in the preprocessing (`Normalization.lrn`, models.drop_input_lrn)."""
    try:
        config = _stored_config(Path(path))
    except Exception:  # noqa: BLE001 - load_model reports unreadable files properly later
        return None
    return _input_lrn(config)


def _input_lrn(config: dict):
    from segnet_edge.device.metadata import InputLRN

    for where, obj in _serialised_objects(config):
        if where == "layers" and str(obj.get("class_name")).endswith("LocalResponseNormalization"):
            c = obj.get("config", {})
            return InputLRN(int(c.get("size", 5)), float(c.get("alpha", 1e-4)), float(c.get("beta", 0.75)),
                            float(c.get("k", 1.0)))
    return None


#: tfmot's names for the variables holding a QAT model's learnt activation ranges: a wrapped layer's output,
#: a conv's post-activation (the logits) and the input's QuantizeLayer; each has a _min and a _max.
_ACTIVATION_RANGE_PREFIXES = ("output_", "post_activation_", "quantize_layer_")


def qat_activation_ranges_symmetric(path: str | Path) -> bool:
    """Whether every activation range a QAT .h5 learnt is int8 with zero point 0 (`quantize --activations
    symmetric`), read from its stored variables without TensorFlow; False when it holds none."""
    import h5py

    try:
        with h5py.File(Path(path), "r") as f:
            return _ranges_symmetric(f)
    except (OSError, ValueError):
        return False


def _ranges_symmetric(f) -> bool:
    """qat_activation_ranges_symmetric on an open h5py.File."""
    import h5py

    ranges: dict[str, dict[str, float]] = {}

    def visit(name: str, item) -> None:
        stem, _, end = name.rpartition("_")  # ".../output" and "min:0"
        if isinstance(item, h5py.Dataset) and end in ("min:0", "max:0") and \
                f"{stem.rsplit('/', 1)[-1]}_" in _ACTIVATION_RANGE_PREFIXES:
            ranges.setdefault(stem, {})[end[:3]] = float(np.asarray(item).ravel()[0])

    try:
        if "model_weights" in f:
            f["model_weights"].visititems(visit)
    except (OSError, ValueError):
        return False
    return bool(ranges) and all(set(r) == {"min", "max"} and _int8_zero_point(r["min"], r["max"]) == 0
                                for r in ranges.values())


def _int8_zero_point(low: float, high: float) -> int:
    """The zero point TensorFlow's fake-quant nudges [low, high] to, as int8 (uint8 code - 128)."""
    if high <= low:
        return -128
    scale = (high - low) / 255.0
    return int(np.floor(-low / scale + 0.5)) - 128


def _is_keras_layer(class_name: str) -> bool:
    from segnet_edge._tf import keras

    if not class_name.isidentifier() or class_name.startswith("_"):
        return False
    candidate = getattr(keras.layers, class_name, None)
    return isinstance(candidate, type) and issubclass(candidate, keras.layers.Layer)


def check_config_safe(config, where: str) -> None:
    """Refuse a stored model config that would run code from the file when deserialised.

    Refused: a Lambda (or any object serialised as a Python function) anywhere; an object that names a
    module outside Keras, tfmot and segnet-edge; a layer whose class is neither Keras' nor segnet-edge's;
    a QAT quantize config or quantizer that is neither tfmot's nor ours. `where` starts the message.
    """
    from segnet_edge.layers import CUSTOM_OBJECTS

    hint = "refused (pass --unsafe-load only if you trust the file)"
    if not isinstance(config, dict):
        raise ModelFileError(f"{where}: the stored model config is not a Keras model config; re-export it")
    allowed_layers = set(CUSTOM_OBJECTS) | {"Functional", "Sequential", "Model"} | QAT_LAYER_CLASSES
    for key, obj in _serialised_objects(config):
        class_name, name = str(obj.get("class_name")), _name_of(obj)
        inner = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        if class_name in ("Lambda", "__lambda__") or inner.get("function_type") == "lambda":
            what = "a Lambda" if class_name == "Lambda" else f"a Python function ({class_name})"
            raise ModelFileError(f"{where}: layer {name!r} is {what}, which runs code from the file; {hint}")
        module = obj.get("module")
        if module is not None and not (isinstance(module, str) and module.split(".")[0] in _TRUSTED_MODULES):
            raise ModelFileError(f"{where}: {class_name!r} ({name!r}) names module {module!r}, which is neither "
                                 f"Keras' nor segnet-edge's; {hint}")
        if key in _LAYER_KEYS and class_name not in allowed_layers and not _is_keras_layer(class_name):
            raise ModelFileError(f"{where}: layer {name!r} has class {class_name!r}, which is neither Keras' nor "
                                 f"segnet-edge's; {hint}")
        if key in _QAT_SETTING_KEYS and class_name not in QAT_SETTING_CLASSES:
            raise ModelFileError(f"{where}: layer {name!r} names quantization class {class_name!r}, which is "
                                 f"neither tfmot's nor segnet-edge's; {hint}")
    root = str(config.get("class_name"))
    if root not in allowed_layers and not _is_keras_layer(root):
        raise ModelFileError(f"{where}: the model has class {root!r}, which is neither Keras' nor segnet-edge's; {hint}")


def check_safe(path: Path) -> None:
    """Refuse a model file whose config would run code when deserialised (see check_config_safe)."""
    check_config_safe(_stored_config(path), str(path))


def load_model(path: str | Path, unsafe: bool = False, compile: bool = False, verify: bool = True,
               stored: StoredModel | None = None):
    """Load a segnet-edge model; returns the Keras model (metadata: `read_metadata`). The config is checked
    for code first (unless `unsafe`), then the file against its digest (unless not `verify`). `stored`: the
    file's read_stored, when the caller has it already."""
    path = Path(path)
    stored = stored or read_stored(path)  # existence, suffix and "is ours" checks, before TensorFlow
    from segnet_edge._tf import keras
    from segnet_edge.layers import CUSTOM_OBJECTS

    try:
        config = stored.config if stored.config is not None else _stored_config(path)
        if not unsafe:
            check_config_safe(config, str(path))
        if verify:
            verify_model_file(path, stored.metadata)
        kwargs = {"safe_mode": not unsafe} if path.suffix == ".keras" else {}
        if is_quantization_aware_config(config):
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
