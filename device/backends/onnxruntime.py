"""ONNX Runtime for `.onnx`: TensorRT, CUDA, then CPU execution providers, whichever are present."""

from __future__ import annotations

import numpy as np

from segnet_edge.device.backends import onnx_file
from segnet_edge.device.backends.base import Backend, TensorSpec, register
from segnet_edge.device.errors import ModelFileError, UsageError

#: Execution providers in the order we prefer them; only those the installed build offers are used.
PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")

_DTYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int32)": "int32", "tensor(int64)": "int64",
}  # fmt: skip


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise UsageError("the onnxruntime backend needs onnxruntime; pip install onnxruntime "
                         "(onnxruntime-gpu on a GPU host; NVIDIA's Jetson Zoo wheel on a Jetson)") from None
    return onnxruntime


def choose_providers(available: list[str], requested: tuple[str, ...] | None) -> list[str]:
    """Requested providers must exist; otherwise the preferred ones that exist, in order."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise UsageError(f"execution provider(s) {', '.join(missing)} not in this onnxruntime "
                             f"(available: {', '.join(available)})")
        return list(requested)
    chosen = [p for p in PREFERRED_PROVIDERS if p in available]
    return chosen or list(available)


@register
class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    # its file format: backends/onnx_file.py
    suffixes = (".onnx",)
    file_format = "onnx"
    min_bytes = onnx_file.MIN_BYTES
    check_file = staticmethod(onnx_file.check_file)
    read_metadata_json = staticmethod(onnx_file.read_metadata_json)

    def activate_impl(self) -> None:
        ort = import_onnxruntime()
        self._ort = ort
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        if self.options.threads:
            options.intra_op_num_threads = int(self.options.threads)
        providers = choose_providers(ort.get_available_providers(), self.options.providers)
        try:
            self._session = ort.InferenceSession(str(self.path), sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises several private exception types
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
            raise ModelFileError(f"{self.path}: ONNX Runtime cannot load it ({first}); re-export it") from None
        self._input = self._session.get_inputs()[0]
        self._output = self._session.get_outputs()[0]

    def deactivate_impl(self) -> None:
        self._session = None

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        try:
            return self._session.run([self._output.name], {self._input.name: x})[0]
        except Exception as exc:  # noqa: BLE001 - the input was checked: the graph itself cannot run
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else exc.__class__.__name__
            raise ModelFileError(f"{self.path}: ONNX Runtime cannot run it ({first}); re-export it") from None

    def get_input_metadata_impl(self) -> TensorSpec:
        return _spec(self._input)

    def get_output_metadata_impl(self) -> TensorSpec:
        return _spec(self._output)

    def describe(self) -> str:
        session = getattr(self, "_session", None)
        providers = session.get_providers() if session is not None else []
        version = getattr(getattr(self, "_ort", None), "__version__", "unknown")
        threads = self.options.threads if self.options.threads else "default"
        return f"onnxruntime {version} ({', '.join(providers) or 'not active'}, threads={threads})"


def _spec(node) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorSpec(node.name, shape, _DTYPES.get(node.type, node.type))
