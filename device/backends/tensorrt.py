"""TensorRT for serialized engines (`.engine`, `.plan`, `.trt`), with cuda-python or pycuda for memory.

An engine carries no metadata, so it comes from `<engine>.json` beside it. The
tensor-name API (`set_tensor_address`, `execute_async_v3`) is TensorRT >= 8.5,
which JetPack 6 ships.
"""

from __future__ import annotations

import numpy as np

from segnet_edge.device.backends import engine_file
from segnet_edge.device.backends.base import Backend, TensorSpec, register
from segnet_edge.device.errors import ModelFileError, UsageError

INSTALL_HINT = (
    "on a Jetson it comes with JetPack (apt install python3-libnvinfer nvidia-tensorrt); "
    "elsewhere pip install tensorrt"
)
CUDA_HINT = "pip install cuda-python (or pycuda)"


def import_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise UsageError(f"the tensorrt backend needs the TensorRT Python package; {INSTALL_HINT}") from None
    return tensorrt


def resolve_shape(engine_shape: tuple[int, ...], wanted: tuple[int, ...]) -> tuple[int, ...]:
    """Fill an engine's dynamic (-1) dimensions from the shape we will feed; refuse real mismatches."""
    if len(engine_shape) != len(wanted) or any(e not in (-1, w) for e, w in zip(engine_shape, wanted)):
        raise ModelFileError(f"engine input shape {list(engine_shape)} cannot take {list(wanted)}; rebuild the engine")
    return tuple(wanted)


class _CudaPython:
    """Device memory and a stream through NVIDIA's cuda-python runtime bindings."""

    def __init__(self, device: int):
        try:
            from cuda.bindings import runtime as cudart
        except ImportError:
            from cuda import cudart
        self.rt = cudart
        self._check(cudart.cudaSetDevice(device))
        self.stream = self._check(cudart.cudaStreamCreate())
        self.name = "cuda-python"

    def _check(self, result):
        err, *rest = result
        if err != self.rt.cudaError_t.cudaSuccess:
            raise UsageError(f"CUDA call failed: {self.rt.cudaGetErrorString(err)[1].decode()}")
        return rest[0] if len(rest) == 1 else rest

    @property
    def stream_handle(self) -> int:
        return int(self.stream)

    def malloc(self, nbytes: int) -> int:
        return int(self._check(self.rt.cudaMalloc(nbytes)))

    def free(self, ptr: int) -> None:
        self.rt.cudaFree(ptr)

    def htod(self, ptr: int, host: np.ndarray) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check(self.rt.cudaMemcpyAsync(ptr, host.ctypes.data, host.nbytes, kind, self.stream))

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check(self.rt.cudaMemcpyAsync(host.ctypes.data, ptr, host.nbytes, kind, self.stream))

    def synchronize(self) -> None:
        self._check(self.rt.cudaStreamSynchronize(self.stream))

    def close(self) -> None:
        self.rt.cudaStreamDestroy(self.stream)


class _PyCuda:
    """The same through pycuda, with a context of our own (no pycuda.autoinit)."""

    def __init__(self, device: int):
        import pycuda.driver as cuda

        cuda.init()
        self.cuda = cuda
        self.context = cuda.Device(device).make_context()
        self.stream = cuda.Stream()
        self._allocations: dict[int, object] = {}
        self.name = "pycuda"

    @property
    def stream_handle(self) -> int:
        return int(self.stream.handle)

    def malloc(self, nbytes: int) -> int:
        allocation = self.cuda.mem_alloc(nbytes)
        self._allocations[int(allocation)] = allocation
        return int(allocation)

    def free(self, ptr: int) -> None:
        allocation = self._allocations.pop(ptr, None)
        if allocation is not None:
            allocation.free()

    def htod(self, ptr: int, host: np.ndarray) -> None:
        self.cuda.memcpy_htod_async(ptr, host, self.stream)

    def dtoh(self, host: np.ndarray, ptr: int) -> None:
        self.cuda.memcpy_dtoh_async(host, ptr, self.stream)

    def synchronize(self) -> None:
        self.stream.synchronize()

    def close(self) -> None:
        self.context.pop()


def cuda_api(device: int = 0):
    """cuda-python if present, else pycuda; a one-line error when neither is installed."""
    try:
        return _CudaPython(device)
    except ImportError:
        pass
    try:
        return _PyCuda(device)
    except ImportError:
        raise UsageError(f"the tensorrt backend needs CUDA Python bindings; {CUDA_HINT}") from None


@register
class TensorRTBackend(Backend):
    name = "tensorrt"
    # its file format: backends/engine_file.py (the metadata is the sidecar `<engine>.json`)
    suffixes = (".engine", ".plan", ".trt")
    file_format = "engine"
    min_bytes = engine_file.MIN_BYTES
    read_metadata_json = staticmethod(engine_file.read_metadata_json)
    payload_files = staticmethod(engine_file.payload_files)

    def activate_impl(self) -> None:
        trt = import_tensorrt()
        self._trt = trt
        self._cuda = cuda_api(self.options.device)
        self._buffers: list[int] = []
        try:
            self._open_engine(trt)
        except BaseException:
            self.deactivate_impl()
            raise

    def _open_engine(self, trt) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self._engine is None:
            raise ModelFileError(f"{self.path}: TensorRT {trt.__version__} cannot deserialize it (built by another "
                                 "TensorRT version or for another GPU?); rebuild it on this device")
        self._context = self._engine.create_execution_context()
        self._inputs: list[TensorSpec] = []
        self._outputs: list[tuple[TensorSpec, np.ndarray, int]] = []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name))).name
            shape = tuple(self._engine.get_tensor_shape(name))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                shape = resolve_shape(shape, self.expected_input.shape)
                self._context.set_input_shape(name, shape)
                ptr = self._cuda.malloc(int(np.prod(shape)) * np.dtype(dtype).itemsize)
                self._inputs.append(TensorSpec(name, shape, dtype))
                self._input_ptr = ptr
            else:
                shape = tuple(self._context.get_tensor_shape(name))
                host = np.empty(shape, dtype=dtype)
                ptr = self._cuda.malloc(host.nbytes)
                self._outputs.append((TensorSpec(name, shape, dtype), host, ptr))
            self._buffers.append(ptr)
            self._context.set_tensor_address(name, ptr)
        if len(self._inputs) != 1 or not self._outputs:
            raise ModelFileError(f"{self.path}: expected one input and an output, found {len(self._inputs)} inputs")

    def deactivate_impl(self) -> None:
        cuda = getattr(self, "_cuda", None)
        if cuda is None:
            return
        for ptr in getattr(self, "_buffers", []):
            cuda.free(ptr)
        self._buffers = []
        self._context = self._engine = self._runtime = None
        cuda.close()
        self._cuda = None

    def infer_impl(self, x: np.ndarray) -> np.ndarray:
        spec, host, ptr = self._outputs[0]
        self._cuda.htod(self._input_ptr, x)
        if not self._context.execute_async_v3(self._cuda.stream_handle):
            raise UsageError(f"{self.path}: TensorRT execution failed")
        self._cuda.dtoh(host, ptr)
        self._cuda.synchronize()
        return host.copy()

    def get_input_metadata_impl(self) -> TensorSpec:
        return self._inputs[0]

    def get_output_metadata_impl(self) -> TensorSpec:
        return self._outputs[0][0]

    def describe(self) -> str:
        trt = getattr(self, "_trt", None)
        cuda = getattr(self, "_cuda", None)
        version = trt.__version__ if trt is not None else "unknown"
        return f"tensorrt {version} ({cuda.name if cuda else 'not active'}, device {self.options.device})"
