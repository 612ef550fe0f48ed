"""TensorRT adapter: an `IInt8EntropyCalibrator2` over the shared calibration set, with the standard cache.

Everything except the TensorRT base class and the GPU copy lives in plain Python
(`CalibratorState`, `CalibrationCache`) so it is tested on machines without
TensorRT; `make_entropy_calibrator` adds the two where `tensorrt` imports.

The cache is TensorRT's own text format, the one `trtexec --calib=FILE` reads:
a header line `TRT-<version>-EntropyCalibration2`, then `<tensor>: <hex>` per
tensor, the hex being the big-endian bits of the float32 scale. A cache written
by another algorithm is ignored (TensorRT would silently mix range definitions).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.device.errors import DataError, UsageError
from segnet_edge.device.metadata import Normalization

ALGORITHM = "EntropyCalibration2"
_HEADER = re.compile(r"^TRT-(\d+)-(\w+)$")


@dataclass(frozen=True)
class CalibrationCache:
    """A parsed TensorRT calibration cache: header and one float32 scale per tensor."""

    header: str
    scales: dict[str, float]

    @property
    def version(self) -> str | None:
        match = _HEADER.match(self.header)
        return match.group(1) if match else None

    @property
    def algorithm(self) -> str | None:
        match = _HEADER.match(self.header)
        return match.group(2) if match else None

    def to_bytes(self) -> bytes:
        lines = [self.header] + [f"{name}: {struct.pack('>f', scale).hex()}" for name, scale in self.scales.items()]
        return ("\n".join(lines) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes, where: str = "calibration cache") -> CalibrationCache:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise DataError(f"{where}: not a TensorRT calibration cache (binary data)") from None
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines or not _HEADER.match(lines[0]):
            raise DataError(f"{where}: not a TensorRT calibration cache (no TRT-<version>-<algorithm> header)")
        scales: dict[str, float] = {}
        for number, line in enumerate(lines[1:], start=2):
            name, sep, value = line.rpartition(":")
            try:
                if not sep:
                    raise ValueError
                scales[name.strip()] = struct.unpack(">f", bytes.fromhex(value.strip()))[0]
            except (ValueError, struct.error):
                raise DataError(f"{where}:{number}: expected `tensor: <8 hex digits>`, got {line!r}") from None
        return cls(lines[0], scales)


def read_cache(path: str | Path) -> bytes | None:
    path = Path(path)
    return path.read_bytes() if path.is_file() else None


def write_cache(path: str | Path, data: bytes) -> Path:
    from segnet_edge.atomic import write_bytes_atomic

    return write_bytes_atomic(path, bytes(data))


class CalibratorState:
    """What an entropy calibrator does, minus TensorRT and the GPU: batches out, cache in and out."""

    def __init__(self, calib: CalibrationSet, normalization: Normalization, cache_path: str | Path,
                 batch_size: int = 1):
        self.calib = calib
        self.normalization = normalization
        self.cache_path = Path(cache_path)
        self.batch_size = int(batch_size)
        self._batches: Iterator[np.ndarray] = calib.batches(normalization, self.batch_size)
        self.batches_served = 0

    @property
    def batch_nbytes(self) -> int:
        height, width = self.calib.size
        return self.batch_size * height * width * 3 * 4

    def next_batch(self) -> np.ndarray | None:
        """The next contiguous float32 batch, or None when the set is exhausted (TensorRT stops there)."""
        batch = next(self._batches, None)
        if batch is not None:
            self.batches_served += 1
        return batch

    def read_calibration_cache(self) -> bytes | None:
        """The stored cache when it is an EntropyCalibration2 cache, else None (TensorRT then calibrates)."""
        data = read_cache(self.cache_path)
        if data is None:
            return None
        try:
            cache = CalibrationCache.parse(data, str(self.cache_path))
        except DataError:
            return None
        return data if cache.algorithm == ALGORITHM else None

    def write_calibration_cache(self, data: bytes) -> None:
        write_cache(self.cache_path, data)


class _DeviceBuffer:
    """One CUDA allocation with a host-to-device copy: cuda-python if present, else pycuda."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        try:
            from cuda import cudart  # cuda-python, NVIDIA's own binding

            self._cudart = cudart
            err, self.ptr = cudart.cudaMalloc(nbytes)
            if int(err) != 0:
                raise UsageError(f"cudaMalloc({nbytes}) failed ({err}); is a GPU free?")
            return
        except ImportError:
            self._cudart = None
        try:
            import pycuda.autoinit  # noqa: F401 - creates the context
            import pycuda.driver as driver
        except ImportError:
            raise UsageError("the TensorRT calibrator needs cuda-python or pycuda to copy batches to the GPU; "
                             "pip install cuda-python, or use the QDQ int8 path (--trt-int8 qdq)") from None
        self._driver = driver
        self._allocation = driver.mem_alloc(nbytes)
        self.ptr = int(self._allocation)

    def copy_from(self, host: np.ndarray) -> None:
        host = np.ascontiguousarray(host)
        if self._cudart is not None:
            kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
            (err,) = self._cudart.cudaMemcpy(self.ptr, host.ctypes.data, host.nbytes, kind)
            if int(err) != 0:
                raise RuntimeError(f"cudaMemcpy failed ({err})")
        else:
            self._driver.memcpy_htod(self._allocation, host)

    def free(self) -> None:
        if self._cudart is not None and self.ptr:
            self._cudart.cudaFree(self.ptr)
            self.ptr = 0


def make_entropy_calibrator(calib: CalibrationSet, normalization: Normalization, cache_path: str | Path,
                            batch_size: int = 1):
    """A `tensorrt.IInt8EntropyCalibrator2` over `calib`; only where TensorRT and a GPU exist."""
    try:
        import tensorrt as trt
    except ImportError:
        raise UsageError("the TensorRT calibrator needs the tensorrt package (JetPack ships it)") from None

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.state = CalibratorState(calib, normalization, cache_path, batch_size)
            self.buffer: _DeviceBuffer | None = None

        def get_batch_size(self) -> int:
            return self.state.batch_size

        def get_batch(self, names):  # noqa: ARG002 - one input
            batch = self.state.next_batch()
            if batch is None:
                return None
            if self.buffer is None:
                self.buffer = _DeviceBuffer(self.state.batch_nbytes)
            self.buffer.copy_from(batch)
            return [int(self.buffer.ptr)]

        def read_calibration_cache(self):
            return self.state.read_calibration_cache()

        def write_calibration_cache(self, cache) -> None:
            self.state.write_calibration_cache(bytes(cache))

        def free(self) -> None:
            if self.buffer is not None:
                self.buffer.free()
                self.buffer = None

    return EntropyCalibrator()
