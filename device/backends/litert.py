"""LiteRT (TensorFlow Lite) for `.tflite`: ai-edge-litert, else tflite_runtime, else tf.lite.

The interpreter's default op resolver applies XNNPACK on CPU; `threads` sets its thread count.
"""

from __future__ import annotations

import importlib

import numpy as np

from segnet_edge.device.backends import tflite_file
from segnet_edge.device.backends.base import Backend, TensorSpec, check_quantization, register
from segnet_edge.device.backends.mapped_pages import release_file_pages
from segnet_edge.device.errors import ModelFileError, UsageError

#: Where an Interpreter class may come from, best first (the board has no TensorFlow).
RUNTIMES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def interpreter_class() -> tuple[type, str]:
    """The first importable Interpreter and the distribution that provides it."""
    for module_name, dist in RUNTIMES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return module.Interpreter, dist
    raise UsageError("no LiteRT runtime is installed; pip install ai-edge-litert (or tflite-runtime on 32-bit ARM)")


#: Run in a child process before the interpreter opens a file in ours: LiteRT can die with SIGSEGV on
#: damaged models that its verifier accepts (see segnet_edge.device.artifact_check).
_PROBE = """
import importlib, sys
import numpy as np
module, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
interpreter = importlib.import_module(module).Interpreter(model_path=path, num_threads=threads or None)
interpreter.allocate_tensors()
for detail in interpreter.get_input_details():
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
interpreter.invoke()
"""


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


@register
class LiteRTBackend(Backend):
    name = "litert"
    # its file format: backends/tflite_file.py
    suffixes = (".tflite",)
    file_format = "tflite"
    min_bytes = tflite_file.MIN_BYTES
    check_file = staticmethod(tflite_file.check_file)
    read_metadata_json = staticmethod(tflite_file.read_metadata_json)

    def activate_impl(self) -> None:
        interpreter_cls, self._dist = interpreter_class()
        try:
            self._interpreter = interpreter_cls(model_path=str(self.path), num_threads=self.options.threads)
            self._interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise ModelFileError(f"{self.path}: LiteRT cannot load it ({first}); re-export it") from None
        # XNNPACK has repacked the weights: the mapped file's pages are a second copy (docs/memory.md, section 6).
        self.released_bytes = release_file_pages(self.path).resident_bytes
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        check_quantization(self.path, "input", *self._input["quantization"], self.metadata.input_quantization)
        check_quantization(self.path, "output", *self._output["quantization"], self.metadata.output_quantization)

    def deactivate_impl(self) -> None:
        self._interpreter = None

    def child_probe(self) -> tuple[str, list[str]]:
        interpreter_cls, _ = interpreter_class()
        return _PROBE, [interpreter_cls.__module__, str(self.path), str(self.options.threads or 0)]

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        try:
            self._interpreter.set_tensor(self._input["index"], x)
            self._interpreter.invoke()
            return self._interpreter.get_tensor(self._output["index"])
        except (ValueError, RuntimeError) as exc:  # the input was checked: the model itself cannot run
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
            raise ModelFileError(f"{self.path}: LiteRT cannot run it ({first}); re-export it") from None

    def get_input_metadata_impl(self) -> TensorSpec:
        return _spec(self._input)

    def get_output_metadata_impl(self) -> TensorSpec:
        return _spec(self._output)

    def describe(self) -> str:
        dist = getattr(self, "_dist", None) or interpreter_class()[1]
        threads = self.options.threads if self.options.threads else "default"
        return f"{dist} {_version(dist)} (XNNPACK, threads={threads})"


def _spec(detail: dict) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(None if int(d) < 0 else int(d) for d in signature)
    return TensorSpec(str(detail["name"]), shape, np.dtype(detail["dtype"]).name)
