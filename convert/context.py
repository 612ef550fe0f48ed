"""What every exporter receives (`ExportContext`) and returns (`ExportResult`).

The context owns the expensive, shared things: the Keras model (one copy per unpool
formulation), the float ONNX graphs (exported once per formulation and reused by
the QDQ graph and the engines), the calibration set, and the staging folder that
artifacts are written to before `convert_model` moves them into OUT together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.convert.options import ConvertOptions
from segnet_edge.device.errors import UsageError
from segnet_edge.device.metadata import ModelMetadata

#: Calibration frames the activation peaks are measured on (the int8 ranges use them all).
EQUALIZE_FRAMES = 64


class ConversionError(UsageError):
    """The model cannot become this artifact as asked (e.g. an op TFLite has no int8 builtin for)."""


@dataclass
class Check:
    """One pass/fail line of the report."""

    name: str
    passed: bool
    detail: str

    def to_json(self) -> dict:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


@dataclass
class ExportResult:
    """A staged artifact (or why there is none) and what its exporter learned about it."""

    path: Path | None = None
    metadata: ModelMetadata | None = None
    ops: list[str] = field(default_factory=list)
    unpool_mode: str | None = None
    checks: list[Check] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # reason, when no artifact was built here
    command: str | None = None  # the equivalent command to build it elsewhere (trtexec)
    extra_files: list[Path] = field(default_factory=list)  # staged files that travel with it (sidecars, caches)
    mixed_precision: object | None = None  # precision_search.MixedPrecision: what an int8 TFLite kept in float


@dataclass
class ExportContext:
    model_path: Path
    metadata: ModelMetadata  # the Keras model's, at the export input size
    options: ConvertOptions
    staging: Path
    calibration: CalibrationSet | None
    qat: bool
    load_keras: Callable[[], object]
    log: Callable[[str], None] = print
    results: dict[str, ExportResult] = field(default_factory=dict)
    _keras: dict[str, object] = field(default_factory=dict)
    equalization: object | None = None  # convert.equalize.Equalization, once the exported weights are equalized
    _onnx: dict[str, Path] = field(default_factory=dict)
    #: a QAT model whose activation ranges are all symmetric (`quantize --activations symmetric`)
    qat_symmetric: bool = False
    #: parity.ParityFrames and Keras' probabilities on them: what --layer-error and --precision-search measure on
    frames: object | None = None
    reference: np.ndarray | None = None

    @property
    def input_size(self) -> tuple[int, int]:
        return self.metadata.input_size

    def keras_model(self, unpool_mode: str | None = None):
        """The model with `unpool_mode` (same weights); built once per mode."""
        from segnet_edge.models import with_unpool_mode

        if "source" not in self._keras:
            self._keras["source"] = self.load_keras()
        if unpool_mode is None:
            return self._keras["source"]
        if unpool_mode not in self._keras:
            model = with_unpool_mode(self._exported_weights(), unpool_mode)
            if self.options.output == "labels":  # the source model stays the probability reference
                from segnet_edge.models import with_label_output

                model = with_label_output(model)
            self._keras[unpool_mode] = model
        return self._keras[unpool_mode]

    def _exported_weights(self):
        """The source model, or its activation-equalized twin (same float function) when there are frames to
        measure on; the source itself stays the parity reference."""
        if "exported" not in self._keras:
            source = self._keras["source"]
            if self.options.equalize and self.calibration is not None and len(self.calibration):
                from segnet_edge.convert.equalize import equalize_activations
                from segnet_edge.device.preprocess import preprocess

                frames = self.calibration.frames[:EQUALIZE_FRAMES]
                inputs = np.stack([preprocess(f, self.input_size, self.metadata.normalization) for f in frames])
                source, self.equalization = equalize_activations(source, inputs.astype(np.float32))
                if self.equalization is not None:
                    self.log(self.equalization.line())
            self._keras["exported"] = source
        return self._keras["exported"]

    def from_float_twin(self, fmt) -> bool:
        """A QAT model's float formats are built from, and proven against, its float twin (see model_for)."""
        return self.qat and not fmt.is_int8

    def model_for(self, fmt) -> tuple[object, str]:
        """The Keras model to export `fmt` from and its unpooling formulation.

        A QAT model keeps the formulation it was trained with: tfmot's wrappers fix the graph
        (`segnet-edge quantize` trains with "select", the form every int8 path needs). Its float formats
        come from its float twin: a fake-quant graph is no float artifact (TFLite's converter even
        quantizes one it is asked for at fp16).
        """
        from segnet_edge.convert.registry import unpool_mode

        if self.from_float_twin(fmt):
            mode = unpool_mode(fmt, self.options.trt_version)
            return self.float_keras(mode), mode
        if self.qat:
            model = self.keras_model()
            mode = model_unpool_mode(model, self.metadata.unpool_mode)
            if self.options.output == "labels":
                from segnet_edge.models import with_label_output

                model = with_label_output(model)
            return model, mode
        mode = unpool_mode(fmt, self.options.trt_version)
        return self.keras_model(mode), mode

    def float_keras(self, unpool_mode: str):
        """The float network an exporter quantizes itself: the model, or a QAT model's float twin."""
        if not self.qat:
            return self.keras_model(unpool_mode)
        key = f"float-twin-{unpool_mode}"
        if key not in self._keras:
            model = float_twin(self.keras_model(), self.metadata, unpool_mode)
            if self.options.output == "labels":
                from segnet_edge.models import with_label_output

                model = with_label_output(model)
            self._keras[key] = model
        return self._keras[key]

    def float_reference(self, inputs: np.ndarray) -> np.ndarray:
        """A QAT model's float twin on the parity frames: what its float artifacts are compared with."""
        if "float-twin-reference" not in self._keras:  # probabilities even under --output labels
            twin = (self.float_keras("select") if self.options.output == "probabilities"
                    else float_twin(self.keras_model(), self.metadata, "select"))
            self._keras["float-twin-reference"] = twin.predict(inputs, batch_size=1, verbose=0)
        return self._keras["float-twin-reference"]

    def float_onnx(self, unpool_mode: str) -> Path:
        """A float ONNX graph (no metadata) in staging, exported once per unpool mode (or "maxunpool")."""
        if unpool_mode not in self._onnx:
            import onnx

            from segnet_edge.convert.onnx import export_graph
            from segnet_edge.convert.ort_pooling import ORT_UNPOOL_MODE, export_ort_graph

            if unpool_mode == ORT_UNPOOL_MODE:  # ONNX Runtime's MaxPool indices + MaxUnpool, built from any form
                proto = export_ort_graph(self.float_keras("select"), self.input_size, self.options.batch,
                                         self.options.onnx_opset)
            else:
                proto = export_graph(self.float_keras(unpool_mode), self.input_size, self.options.batch,
                                     self.options.onnx_opset)
            path = self.staging / f".float-{unpool_mode}.onnx"
            onnx.save(proto, str(path))
            self._onnx[unpool_mode] = path
        return self._onnx[unpool_mode]

    def need_calibration(self, fmt_name: str) -> CalibrationSet:
        if self.calibration is None:
            raise UsageError(f"{fmt_name} needs a calibration set: give --calib calib.npz or --calib-data SRC")
        return self.calibration


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
