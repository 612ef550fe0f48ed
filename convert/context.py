"""What every exporter receives (`ExportContext`) and returns (`ExportResult`).

The context owns the expensive, shared things: the model source (its Keras graphs, and
what its kind decides: convert/source.py), the float ONNX graphs (exported once per
formulation and reused by the QDQ graph and the engines), the calibration set, and the
staging folder that artifacts are written to before `convert_model` moves them into OUT
together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.convert.options import ConvertOptions
from segnet_edge.device.errors import UsageError
from segnet_edge.device.metadata import ModelMetadata

if TYPE_CHECKING:
    import numpy as np

    from segnet_edge.convert.source import ModelSource


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
    """One conversion's shared state; what depends on the model's kind is asked of `source`."""

    source: ModelSource  # the model file, and what its kind (float or QAT) decides
    options: ConvertOptions
    staging: Path
    calibration: CalibrationSet | None
    log: Callable[[str], None] = print
    results: dict[str, ExportResult] = field(default_factory=dict)
    _onnx: dict[str, Path] = field(default_factory=dict)
    #: parity.ParityFrames and Keras' probabilities on them: what --layer-error and --precision-search measure on
    frames: object | None = None
    reference: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.source.calibration = self.calibration  # a float model's exported weights are equalized on it

    @property
    def metadata(self) -> ModelMetadata:
        """The Keras model's, at the export input size."""
        return self.source.metadata

    @property
    def input_size(self) -> tuple[int, int]:
        return self.metadata.input_size

    @property
    def equalization(self):
        return self.source.equalization

    def artifact_metadata(self, fmt, unpool_mode: str) -> ModelMetadata:
        """The metadata stamped into `fmt`'s artifact, exported with `unpool_mode`."""
        return replace(self.metadata, format=fmt.name, unpool_mode=unpool_mode)

    def float_onnx(self, unpool_mode: str) -> Path:
        """A float ONNX graph (no metadata) in staging, exported once per unpool mode (or "maxunpool")."""
        if unpool_mode not in self._onnx:
            import onnx

            from segnet_edge.convert.onnx import export_graph
            from segnet_edge.convert.ort_pooling import ORT_UNPOOL_MODE, export_ort_graph

            if unpool_mode == ORT_UNPOOL_MODE:  # ONNX Runtime's MaxPool indices + MaxUnpool, built from any form
                proto = export_ort_graph(self.source.float_model("select"), self.input_size, self.options.batch,
                                         self.options.onnx_opset)
            else:
                proto = export_graph(self.source.float_model(unpool_mode), self.input_size, self.options.batch,
                                     self.options.onnx_opset)
            path = self.staging / f".float-{unpool_mode}.onnx"
            onnx.save(proto, str(path))
            self._onnx[unpool_mode] = path
        return self._onnx[unpool_mode]

    def need_calibration(self, fmt_name: str) -> CalibrationSet:
        if self.calibration is None:
            raise UsageError(f"{fmt_name} needs a calibration set: give --calib calib.npz or --calib-data SRC")
        return self.calibration

