"""Every export format by name: its artifact, what it is built from, and whether this machine can build it.

One table that `convert_model`, the CLI (`--formats`, `--list-formats`) and the docs
read. A format's code is the module named by its `family` (convert/tflite.py,
convert/onnx.py, convert/ort.py, convert/tensorrt.py), each exposing `available()` and
`export(ctx, fmt)`; `convert_model` calls `export` only where `available()` (unless the
format stages something without its toolchain: `stages_without_runtime`). Modules are
imported only when a format is used, so listing formats costs no TensorFlow.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from segnet_edge.device.errors import UsageError


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""  # why not, in words a user can act on


@dataclass(frozen=True)
class ExportFormat:
    name: str
    artifact: str  # file name inside OUT
    family: str  # module under segnet_edge.convert, and the --formats group name
    precision: str  # fp32 | fp16 | int8
    description: str
    #: Unpooling formulation (see layers.MaxUnpooling2D); None: "onehot" for TensorRT >= 8.5, else "select".
    unpool_mode: str | None
    needs: tuple[str, ...] = ()  # formats whose artifacts this one is built from
    size_reference: str | None = None  # the format whose size Targets.int8_tflite_size_ratio compares with
    static_batch: bool = True  # built with --batch (TFLite is always batch 1, what the board feeds)
    #: its exporter stages something (a sidecar, the command for the board) where its toolchain is missing, so
    #: it checks availability itself; for any other format convert skips it unless `available()`
    stages_without_runtime: bool = False

    @property
    def runtime(self) -> str:
        """The device backend that runs the artifact (parity, bench, the board): the one its suffix picks."""
        from segnet_edge.device.backends.base import backend_class

        return backend_class(self.artifact).name

    @property
    def is_int8(self) -> bool:
        return self.precision == "int8"

    def module(self) -> ModuleType:
        return importlib.import_module(f"segnet_edge.convert.{self.family}")

    def available(self) -> Availability:
        return self.module().available()

    def to_json(self) -> dict:
        return {"name": self.name, "artifact": self.artifact, "family": self.family, "precision": self.precision,
                "runtime": self.runtime, "description": self.description, "needs": list(self.needs)}


_FORMATS = (
    # TFLite: one_hot x mul is the fastest float unpooling under XNNPACK, but TFLite's int8 quantizer
    # mis-scales ONE_HOT's output, so the int8 model picks its mask from a constant identity (GATHER
    # keeps the table's exact 0/1 quantization) and multiplies in XNNPACK (bench/run.py measures it
    # against equal + select, whose broadcast SELECT_V2 is a slow reference kernel).
    ExportFormat("tflite-fp32", "model_fp32.tflite", "tflite", "fp32",
                 "TFLite float32, builtin ops only", "onehot", static_batch=False),
    ExportFormat("tflite-fp16", "model_fp16.tflite", "tflite", "fp16",
                 "TFLite with float16 weights (GPU delegate; CPU dequantizes once)", "onehot", static_batch=False),
    ExportFormat("tflite-int8", "model_int8.tflite", "tflite", "int8",
                 "TFLite full integer: int8 (or --io uint8) input and output, per-channel weights", "gather",
                 size_reference="tflite-fp32", static_batch=False),
    # ONNX: the float graph follows --trt-version (OneHot parses from TensorRT 8.5); the QDQ graph
    # always uses equal + where, the cheapest form in ONNX Runtime int8 and one every TensorRT parses.
    ExportFormat("onnx-fp32", "model.onnx", "onnx", "fp32",
                 "ONNX float32, static shape, via tf2onnx", None),
    ExportFormat("onnx-int8", "model_int8.onnx", "onnx", "int8",
                 "ONNX QDQ int8 (symmetric, per-channel) for ONNX Runtime and TensorRT explicit quantization",
                 "select"),
    # ONNX Runtime only: MaxPool's Indices output + MaxUnpool are its native kernels (a few % over plain
    # pooling where the portable index ops cost 20-30%, convert/ort_pooling.py), but TensorRT parses neither,
    # and with no TensorRT to serve the QDQ graph keeps ONNX Runtime's asymmetric uint8 activations.
    ExportFormat("ort-fp32", "model_ort.onnx", "ort", "fp32",
                 "ONNX float32 for ONNX Runtime only: native MaxPool indices + MaxUnpool", "maxunpool"),
    ExportFormat("ort-int8", "model_ort_int8.onnx", "ort", "int8",
                 "ONNX QDQ int8 for ONNX Runtime only: uint8 activations, MaxPool indices + MaxUnpool",
                 "maxunpool"),
    ExportFormat("trt-fp16", "model_fp16.engine", "tensorrt", "fp16",
                 "TensorRT engine, fp16, built from model.onnx", None, needs=("onnx-fp32",),
                 stages_without_runtime=True),
    ExportFormat("trt-int8", "model_int8.engine", "tensorrt", "int8",
                 "TensorRT engine, int8 from the QDQ graph (or model.onnx + the entropy calibrator)", "select",
                 needs=("onnx-fp32", "onnx-int8"), stages_without_runtime=True),
)

FORMATS: dict[str, ExportFormat] = {f.name: f for f in _FORMATS}

#: Names that stand for several formats on the command line.
GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(FORMATS),
    "tflite": tuple(f.name for f in _FORMATS if f.family == "tflite"),
    "onnx": tuple(f.name for f in _FORMATS if f.family == "onnx"),
    "ort": tuple(f.name for f in _FORMATS if f.family == "ort"),
    "tensorrt": tuple(f.name for f in _FORMATS if f.family == "tensorrt"),
    "int8": tuple(f.name for f in _FORMATS if f.is_int8),
}
GROUPS["trt"] = GROUPS["tensorrt"]

#: TensorRT versions whose ONNX parser takes OneHot (onnx-tensorrt docs/operators.md, release/8.5-GA on).
ONEHOT_MIN_TRT = (8, 5)


def parse_trt_version(text: str) -> tuple[int, int]:
    """`"8.6"` / `"8.6.1"` / `"10"` -> (major, minor)."""
    parts = str(text).strip().split(".")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 else 0
    except ValueError:
        raise UsageError(f"--trt-version must look like 8.6 or 10.3 (got {text!r})") from None
    if major < 8:
        raise UsageError(f"--trt-version {text}: TensorRT before 8.0 has no explicit int8 quantization; use 8.2 or later")
    return major, minor


def unpool_mode(fmt: ExportFormat, trt_version: str) -> str:
    """The unpooling formulation `fmt` is exported with."""
    if fmt.unpool_mode is not None:
        return fmt.unpool_mode
    return "onehot" if parse_trt_version(trt_version) >= ONEHOT_MIN_TRT else "select"


def resolve_formats(names: str | list[str] | tuple[str, ...]) -> list[ExportFormat]:
    """Expand groups, add what each format is built from, keep the table's order; unknown names fail."""
    if isinstance(names, str):
        names = [names]
    wanted: set[str] = set()
    for entry in names:
        for name in (n.strip() for n in str(entry).split(",")):
            if not name:
                continue
            if name in GROUPS:
                wanted.update(GROUPS[name])
            elif name in FORMATS:
                wanted.add(name)
            else:
                known = ", ".join([*FORMATS, *GROUPS])
                raise UsageError(f"unknown format {name!r}; use one of {known}")
    if not wanted:
        raise UsageError("no format given; use --formats all, or a list like tflite-int8,onnx")
    pending = list(wanted)
    while pending:
        for need in FORMATS[pending.pop()].needs:
            if need not in wanted:
                wanted.add(need)
                pending.append(need)
    return [f for f in _FORMATS if f.name in wanted]


def format_table() -> str:
    """The formats as a plain-text table, with this machine's availability (for --list-formats and docs)."""
    rows = [("format", "artifact", "available here", "what")]
    for f in _FORMATS:
        availability = f.available()
        rows.append((f.name, f.artifact, "yes" if availability.ok else f"no: {availability.reason}", f.description))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows)
