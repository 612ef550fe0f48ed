"""The model a conversion starts from, and everything its kind decides, in one object.

A float model and a quantization-aware (QAT) model differ in which graph each format exports, whether
an int8 format needs a calibration set, which reference parity compares with, where the int8 ranges
come from and what `--input-size` can do. `open_source` reads the file once (model_io.read_stored) and
returns a FloatSource or a QatSource that answers those questions, so the exporters ask instead of
branching on the model's kind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.convert.context import ConversionError
from segnet_edge.convert.options import ConvertOptions
from segnet_edge.convert.registry import ExportFormat, unpool_mode
from segnet_edge.device.errors import UsageError
from segnet_edge.device.metadata import ModelMetadata, Normalization
from segnet_edge.model_io import StoredModel, load_model, read_stored

#: Calibration frames the activation peaks are measured on (the int8 ranges use them all).
EQUALIZE_FRAMES = 64

#: int8_ranges: the QAT model's own fake-quant ranges, or ranges calibrated here on the calibration set.
LEARNT, CALIBRATED = "learnt", "calibrated"

#: The report's note on a QAT model's float artifacts, which are built from and proven against its float twin.
FLOAT_TWIN_NOTE = "built from, and parity against the QAT model's float twin (the weights it computes with, no fake-quant)"


def open_source(path: str | Path, options: ConvertOptions, log: Callable[[str], None] | None = None) -> ModelSource:
    """The model file at `path` as the source of `options`' artifacts (no TensorFlow until a graph is asked for)."""
    path = Path(path)
    stored = read_stored(path)
    kind = QatSource if stored.qat else FloatSource
    size = tuple(options.input_size) if options.input_size else tuple(stored.metadata.input_size)
    metadata = replace(stored.metadata, input_size=size, output=options.output, source_sha256=_sha256(path),
                       normalization=kind.export_normalization(stored))
    return kind(stored, metadata, options, log or (lambda message: None))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(eq=False)
class ModelSource:
    """A model file at the export size; its Keras graphs are built once each, when first asked for."""

    stored: StoredModel
    metadata: ModelMetadata  # the artifacts': the export input size, --output, the board's preprocessing
    options: ConvertOptions
    log: Callable[[str], None]
    #: the frames a float model's exported weights are equalized on (ExportContext sets it)
    calibration: CalibrationSet | None = None
    equalization: object | None = None  # convert.equalize.Equalization, once the exported weights are equalized
    _models: dict[str, object] = field(default_factory=dict)

    qat: ClassVar[bool] = False
    #: what the artifact-calibration error suggests instead of a calibration set
    calibration_hint: ClassVar[str] = ""
    #: the report's note on int8 ranges calibrated here although the model learnt its own (None: it learnt none)
    recalibration_note: ClassVar[str | None] = None

    @property
    def path(self) -> Path:
        return self.stored.path

    @property
    def input_size(self) -> tuple[int, int]:
        return self.metadata.input_size

    @staticmethod
    def export_normalization(stored: StoredModel) -> Normalization:
        return stored.metadata.normalization

    def model(self):
        """The model file's network, at the export size and starting where the artifacts' preprocessing
        (`metadata.normalization`) ends: what the artifacts are built from and proven against."""
        if "source" not in self._models:
            from segnet_edge.models import drop_input_lrn

            self.log(f"loading {self.path}")
            model = load_model(self.path, unsafe=self.options.unsafe_load, stored=self.stored)
            if tuple(model.input_shape[1:3]) != tuple(self.input_size):
                model = self._resized(model)
            self._models["source"] = drop_input_lrn(model)[0] if self.metadata.normalization.lrn is not None else model
        return self._models["source"]

    def _resized(self, model):
        raise NotImplementedError

    def int8_ranges(self, fmt: ExportFormat) -> str:
        """Where `fmt`'s int8 ranges come from: LEARNT (the model's fake-quant nodes) or CALIBRATED here."""
        return CALIBRATED

    def needs_calibration(self, fmt: ExportFormat) -> bool:
        return fmt.is_int8 and self.int8_ranges(fmt) == CALIBRATED

    def model_for(self, fmt: ExportFormat) -> tuple[object, str]:
        """The Keras model to export `fmt` from and its unpooling formulation."""
        raise NotImplementedError

    def float_model(self, unpool_mode: str):
        """The float network with `unpool_mode` that an exporter quantizes itself (or exports as float)."""
        raise NotImplementedError

    def parity_reference(self, fmt: ExportFormat, inputs: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """What `fmt`'s outputs on `inputs` are compared with; `reference`: the model's own outputs on them."""
        return reference

    def report_notes(self, fmt: ExportFormat) -> list[str]:
        """The report's notes on `fmt` that come from the kind of model it was built from."""
        return []

    def _labelled(self, model):
        """`model` with the arg-max output `--output labels` asks for."""
        if self.options.output != "labels":
            return model
        from segnet_edge.models import with_label_output

        return with_label_output(model)


@dataclass(eq=False)
class FloatSource(ModelSource):
    """A float model: every format is built from its network (activation-equalized when there are frames to
    measure on), int8 is calibrated here, parity is against the model itself."""

    calibration_hint: ClassVar[str] = "or convert a QAT model"

    @staticmethod
    def export_normalization(stored: StoredModel) -> Normalization:
        """The model's preprocessing plus its input LRN (SegNet-Basic), which every exported graph leaves to the
        board so that its int8 forms are full-integer (models.drop_input_lrn)."""
        normalization = stored.metadata.normalization
        lrn = None if normalization.lrn is not None else stored.input_lrn
        return normalization if lrn is None else replace(normalization, lrn=lrn)

    def _resized(self, model):
        """The network rebuilt at the export size with the same weights (SegNet is fully convolutional)."""
        from segnet_edge.models import build_model, config_from_metadata

        size = tuple(self.input_size)
        clone = build_model(config_from_metadata(self.metadata))  # metadata.input_size is the export size
        try:
            clone.set_weights(model.get_weights())
        except ValueError as exc:
            raise UsageError(f"--input-size {size[0]}x{size[1]}: the weights do not fit a rebuilt "
                             f"{self.metadata.arch} ({exc})") from None
        return clone

    def model_for(self, fmt: ExportFormat) -> tuple[object, str]:
        mode = unpool_mode(fmt, self.options.trt_version)
        return self.float_model(mode), mode

    def float_model(self, unpool_mode: str):
        """The model with `unpool_mode` (same weights); built once per mode."""
        from segnet_edge.models import with_unpool_mode

        if unpool_mode not in self._models:  # the source model stays the probability reference
            self._models[unpool_mode] = self._labelled(with_unpool_mode(self._exported_weights(), unpool_mode))
        return self._models[unpool_mode]

    def _exported_weights(self):
        """The model, or its activation-equalized twin (same float function) when there are frames to measure
        on; the model itself stays the parity reference."""
        if "exported" not in self._models:
            model = self.model()
            if self.options.equalize and self.calibration is not None and len(self.calibration):
                from segnet_edge.convert.equalize import equalize_activations
                from segnet_edge.device.preprocess import preprocess

                frames = self.calibration.frames[:EQUALIZE_FRAMES]
                inputs = np.stack([preprocess(f, self.input_size, self.metadata.normalization) for f in frames])
                model, self.equalization = equalize_activations(model, inputs.astype(np.float32))
                if self.equalization is not None:
                    self.log(self.equalization.line())
            self._models["exported"] = model
        return self._models["exported"]


@dataclass(eq=False)
class QatSource(ModelSource):
    """A QAT model (tfmot's fake-quant wrappers). Its int8 formats come from its own graph and ranges where they
    can: TFLite always, the ONNX graphs when every range is symmetric (zero point 0, `quantize --activations
    symmetric`). Its float formats come from, and are proven against, its float twin: a fake-quant graph is no
    float artifact (TFLite's converter even quantizes one it is asked for at fp16)."""

    qat: ClassVar[bool] = True
    calibration_hint: ClassVar[str] = (
        "a QAT model trained with asymmetric ranges needs one for ONNX/TensorRT int8: their zero-point-0 int8 ranges "
        "are calibrated afresh (`quantize --activations symmetric` avoids it)")
    recalibration_note: ClassVar[str | None] = (
        "QAT-trained weights, symmetric int8 ranges calibrated here: TensorRT takes zero-point-0 int8 only and this "
        "model's fake-quant ranges are asymmetric (`quantize --activations asymmetric`)")

    def _resized(self, model):
        raise UsageError("--input-size cannot rebuild a QAT model; export it at its trained size")

    def int8_ranges(self, fmt: ExportFormat) -> str:
        return LEARNT if fmt.family == "tflite" or self.stored.qat_symmetric else CALIBRATED

    def model_for(self, fmt: ExportFormat) -> tuple[object, str]:
        """int8: the QAT graph, with the unpooling formulation it was trained with (tfmot's wrappers fix the
        graph; `segnet-edge quantize` trains with "select", the form every int8 path needs). Float: the twin."""
        if not fmt.is_int8:
            mode = unpool_mode(fmt, self.options.trt_version)
            return self.float_model(mode), mode
        model = self.model()
        return self._labelled(model), model_unpool_mode(model, self.metadata.unpool_mode)

    def float_model(self, unpool_mode: str):
        key = f"float-twin-{unpool_mode}"
        if key not in self._models:
            self._models[key] = self._labelled(float_twin(self.model(), self.metadata, unpool_mode))
        return self._models[key]

    def parity_reference(self, fmt: ExportFormat, inputs: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """A float format: the float twin on the parity frames (probabilities even under --output labels)."""
        if fmt.is_int8:
            return reference
        if "float-twin-reference" not in self._models:
            twin = (self.float_model("select") if self.options.output == "probabilities"
                    else float_twin(self.model(), self.metadata, "select"))
            self._models["float-twin-reference"] = twin.predict(inputs, batch_size=1, verbose=0)
        return self._models["float-twin-reference"]

    def report_notes(self, fmt: ExportFormat) -> list[str]:
        return [] if fmt.is_int8 else [FLOAT_TWIN_NOTE]


def model_unpool_mode(model, default: str) -> str:
    """The unpooling formulation inside `model` (looking through tfmot's wrappers)."""
    from segnet_edge.layers import MaxUnpooling2D

    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if isinstance(inner, MaxUnpooling2D):
            return inner.mode
    return default


def float_twin(qat_model, metadata: ModelMetadata, unpool_mode: str):
    """The plain network holding the weights a QAT model computes with, tfmot's wrappers stripped.

    Those are the fake-quantized kernels (each on its per-channel int8 grid, the grid's range as stored
    in the file), not the float variables behind them: training moves the variables once more after
    the last range update, and a short QAT run leaves them far enough off their grid that re-rounding
    them changed a quarter of a small model's pixels. The exporters that quantize the network
    themselves read it: the QDQ graph of a QAT model with tfmot's asymmetric ranges (`quantize
    --activations asymmetric`; TensorRT takes only zero point 0) and ONNX Runtime's own uint8 graph
    (convert/qat_ranges.py). A symmetric QAT model's TensorRT graph is its own (convert/qat_qdq.py).
    """
    from segnet_edge.models import build_model, config_from_metadata, drop_input_lrn
    from segnet_edge.optimize.report import unwrap

    model = build_model(config_from_metadata(metadata, unpool_mode=unpool_mode))
    if metadata.normalization.lrn is not None:  # the QAT model starts after it (`quantize` moved it out)
        model = drop_input_lrn(model)[0]

    def short(weight) -> str:  # "quant_block1_conv1/kernel:0" -> "kernel"
        return weight.name.split("/")[-1].split(":")[0]

    # by name from the wrapper, each quantized weight as tfmot computes it at inference
    trained = {unwrap(layer).name: {short(w): w.numpy() for w in layer.weights} for layer in qat_model.layers}
    for wrapper in qat_model.layers:
        for weight, quantizer, quantizer_vars in getattr(wrapper, "_weight_vars", None) or []:
            trained[unwrap(wrapper).name][short(weight)] = quantizer(weight, False, weights=quantizer_vars).numpy()
    for layer in model.layers:
        if not layer.weights:
            continue
        source = trained.get(layer.name, {})
        values = [source.get(short(w)) for w in layer.weights]
        if any(v is None or v.shape != tuple(w.shape) for v, w in zip(values, layer.weights)):
            raise ConversionError(f"the QAT model's layer {layer.name!r} does not match a rebuilt {metadata.arch} "
                                  f"alpha {metadata.alpha:g}; was it quantized by `segnet-edge quantize`?")
        layer.set_weights(values)
    return model
