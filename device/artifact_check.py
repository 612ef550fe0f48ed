"""Check a deployable artifact before a native runtime sees it, and contain the runtimes that can still crash.

Users download artifacts and copy them to boards over flaky links, so a model file
may be truncated, bit-flipped or foreign. Python can report that in one line; a
native runtime handed the same bytes may instead kill the process with a signal.
So every artifact goes through three gates:

1. Static checks here, in pure Python (numpy-free, no runtime): size, the TFLite
   `TFL3` identifier and a bounds-checked walk of the flatbuffer (every table,
   vector and index in range, every constant tensor's buffer the size its shape
   says), `onnx.checker` when the onnx package is present, and the segnet-edge
   metadata the file must carry. A failure is one `ModelFileError` line.
2. A load in a short-lived child process, for the runtimes that still crash on
   damage that passes (1): `probe_in_child`. A backend opts in by returning its
   probe from `Backend.child_probe()`; a child that crashes, hangs or fails becomes
   one line. It costs one extra load and one frame at start-up, once per file per process.
3. The payload digest (segnet_edge.device.integrity): damage that lands in the weights passes
   (1) and (2) and runs, so the SHA-256 recorded at conversion is compared before any runtime
   opens the file (`verify_payload`; `--no-verify` skips it).

Which runtimes need (2) was measured (seeded mutations of the tiny test models, each
load + allocate + one invoke in its own process): ai-edge-litert 2.3 survived ~510
truncations and byte flips of fp32/int8 models (its flatbuffer verifier rejects them)
but died with SIGSEGV on 3 of ~650 field-level mutations: an operator input/output
index pointing at another in-range tensor (in allocate_tensors, XNNPACK; the walk
in (1) cannot know the tensor is wrong) and a tensor pointing at another buffer (in
invoke; (1) now rejects the size mismatch). ONNX Runtime 1.32 survived all ~500
byte-level and field-level mutations (it validates in C++ and raises), so it loads
in process. TensorRT could not be measured here; its backend does not probe yet.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

from segnet_edge.device import integrity
from segnet_edge.device.artifact_metadata import TFLITE_IDENTIFIER, payload_files, read_artifact_metadata
from segnet_edge.device.errors import ModelFileError
from segnet_edge.device.metadata import ModelMetadata

#: Smallest plausible artifacts: a TFLite header is 8 bytes, one-op models are far above these.
MIN_BYTES = {".tflite": 64, ".onnx": 16, ".engine": 16, ".plan": 16, ".trt": 16}
#: A probe loads the model and runs one frame; a big model on a small board CPU needs seconds.
PROBE_TIMEOUT_S = 120.0

# tflite/schema.fbs field indices (the order fields are declared in each table).
_MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "buffers": 4}
_SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3}
_TENSOR = {"shape": 0, "type": 1, "buffer": 2, "sparsity": 6}
_OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "intermediates": 8}
_BUFFER = {"data": 0, "offset": 1, "size": 2}
#: TensorType -> bytes per element, for the fixed-size types (STRING, RESOURCE, VARIANT, INT4 are not).
_ITEM_SIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}


class _Damage(Exception):
    """The flatbuffer is not what the TFLite schema allows (the message says where)."""


class _Walker:
    """Bounds-checked reads of flatbuffer tables and vectors (every offset is checked before use)."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def _unpack(self, fmt: str, pos: int, what: str):
        if pos < 0 or pos + struct.calcsize(fmt) > self.size:
            raise _Damage(f"{what} at byte {pos} is past the end of the file ({self.size} bytes)")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def table(self, pos: int, what: str) -> tuple[int, int, int]:
        """(table position, vtable position, vtable length) after checking both lie in the file."""
        vtable = pos - self._unpack("<i", pos, what)
        vtable_len = self._unpack("<H", vtable, f"{what} vtable")
        object_len = self._unpack("<H", vtable + 2, f"{what} vtable")
        if vtable_len < 4 or vtable_len % 2 or vtable + vtable_len > self.size or pos + object_len > self.size:
            raise _Damage(f"{what} has a broken vtable")
        return pos, vtable, vtable_len

    def field(self, table: tuple[int, int, int], index: int, what: str) -> int | None:
        pos, vtable, vtable_len = table
        slot = 4 + 2 * index
        if slot + 2 > vtable_len:
            return None
        offset = self._unpack("<H", vtable + slot, what)
        if not offset:
            return None
        object_len = self._unpack("<H", vtable + 2, what)
        if offset >= object_len:
            raise _Damage(f"{what} lies outside its table")
        return pos + offset

    def scalar(self, table: tuple[int, int, int], index: int, fmt: str, what: str, default: int = 0) -> int:
        pos = self.field(table, index, what)
        return default if pos is None else self._unpack(fmt, pos, what)

    def vector(self, table: tuple[int, int, int], index: int, item_size: int, what: str) -> tuple[int, int]:
        """(first element position, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index, what)
        if pos is None:
            return 0, 0
        start = pos + self._unpack("<I", pos, what)
        length = self._unpack("<I", start, what)
        if start + 4 + length * item_size > self.size:
            raise _Damage(f"{what} ({length} items) runs past the end of the file")
        return start + 4, length

    def ints(self, table: tuple[int, int, int], index: int, what: str) -> list[int]:
        start, length = self.vector(table, index, 4, what)
        return list(struct.unpack_from(f"<{length}i", self.data, start)) if length else []

    def tables(self, table: tuple[int, int, int], index: int, what: str) -> list[tuple[int, int, int]]:
        start, length = self.vector(table, index, 4, what)
        found = []
        for i in range(length):
            element = start + 4 * i
            found.append(self.table(element + self._unpack("<I", element, what), f"{what}[{i}]"))
        return found


def walk_tflite(data: bytes) -> None:
    """Raise _Damage unless `data` is a structurally sound TFLite model (see the module docstring)."""
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise _Damage("no TFL3 identifier: not a TFLite flatbuffer")
    walker = _Walker(data)
    model = walker.table(walker._unpack("<I", 0, "root offset"), "model")
    version = walker.scalar(model, _MODEL["version"], "<I", "model version")
    if version != 3:
        raise _Damage(f"schema version {version}, not 3")
    opcode_count = walker.vector(model, _MODEL["operator_codes"], 4, "operator codes")[1]
    buffers = walker.tables(model, _MODEL["buffers"], "buffers")
    buffer_sizes = [_buffer_size(walker, buffer, i) for i, buffer in enumerate(buffers)]
    subgraphs = walker.tables(model, _MODEL["subgraphs"], "subgraphs")
    if not subgraphs:
        raise _Damage("no subgraph")
    for g, subgraph in enumerate(subgraphs):
        tensors = walker.tables(subgraph, _SUBGRAPH["tensors"], f"subgraph {g} tensors")
        count = len(tensors)
        for t, tensor in enumerate(tensors):
            _check_tensor(walker, tensor, f"subgraph {g} tensor {t}", buffer_sizes)
        for key in ("inputs", "outputs"):
            for index in walker.ints(subgraph, _SUBGRAPH[key], f"subgraph {g} {key}"):
                if not 0 <= index < count:
                    raise _Damage(f"subgraph {g} {key} name tensor {index} of {count}")
        for o, operator in enumerate(walker.tables(subgraph, _SUBGRAPH["operators"], f"subgraph {g} operators")):
            opcode = walker.scalar(operator, _OPERATOR["opcode_index"], "<I", f"operator {o} opcode")
            if opcode >= opcode_count:
                raise _Damage(f"subgraph {g} operator {o} uses opcode {opcode} of {opcode_count}")
            for key in ("inputs", "outputs", "intermediates"):
                for index in walker.ints(operator, _OPERATOR[key], f"operator {o} {key}"):
                    if not -1 <= index < count:  # -1: an optional input left out
                        raise _Damage(f"subgraph {g} operator {o} {key} name tensor {index} of {count}")


def _buffer_size(walker: _Walker, buffer: tuple[int, int, int], index: int) -> int:
    """Bytes a buffer holds, inline or (models over 2 GB) after the flatbuffer at offset/size."""
    length = walker.vector(buffer, _BUFFER["data"], 1, f"buffer {index} data")[1]
    if length:
        return length
    offset = walker.scalar(buffer, _BUFFER["offset"], "<Q", f"buffer {index} offset")
    size = walker.scalar(buffer, _BUFFER["size"], "<Q", f"buffer {index} size")
    if offset and offset + size > walker.size:
        raise _Damage(f"buffer {index} ({size} bytes at {offset}) runs past the end of the file")
    return size if offset else 0


def _check_tensor(walker: _Walker, tensor: tuple[int, int, int], what: str, buffer_sizes: list[int]) -> None:
    shape = walker.ints(tensor, _TENSOR["shape"], f"{what} shape")
    if any(d < -1 for d in shape):
        raise _Damage(f"{what} has shape {shape}")
    buffer = walker.scalar(tensor, _TENSOR["buffer"], "<I", f"{what} buffer")
    if buffer >= len(buffer_sizes):
        raise _Damage(f"{what} uses buffer {buffer} of {len(buffer_sizes)}")
    stored = buffer_sizes[buffer]
    item = _ITEM_SIZE.get(walker.scalar(tensor, _TENSOR["type"], "<b", f"{what} type"))
    sparse = walker.field(tensor, _TENSOR["sparsity"], f"{what} sparsity") is not None
    if stored and item and not sparse and min(shape, default=1) >= 0:
        elements = 1
        for d in shape:
            elements *= d
        if elements * item != stored:
            raise _Damage(f"{what} has shape {shape} ({elements * item} bytes) but its buffer holds {stored}")


def _check_onnx(path: Path) -> None:
    """onnx.checker over the graph (types, shapes of initializers, node inputs). Skipped without onnx."""
    try:
        import onnx
    except ImportError:
        return  # a board with onnxruntime only: ONNX Runtime's own checks reject damage in process
    try:
        model = onnx.load(str(path), load_external_data=False)
        onnx.checker.check_model(model)
    except Exception as exc:  # noqa: BLE001 - protobuf and the checker raise several types on damage
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: damaged artifact (ONNX: {first}); re-export it with `segnet-edge convert`") from None


def check_artifact(path: str | Path, verify: bool = True) -> ModelMetadata:
    """Static checks of an artifact, its metadata, then (`verify`) its payload digest; one-line
    ModelFileError (IntegrityError for a digest mismatch) for anything wrong."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; check the path")
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if size < MIN_BYTES.get(suffix, 1):
        raise ModelFileError(f"{path}: {size} bytes is too small for a {suffix or 'model'} file "
                             "(truncated copy?); copy or re-export it")
    if suffix == ".tflite":
        try:
            walk_tflite(path.read_bytes())
        except _Damage as exc:
            raise ModelFileError(f"{path}: damaged artifact (TFLite: {exc}); re-export it with `segnet-edge convert`") from None
    elif suffix == ".onnx":
        _check_onnx(path)
    metadata = read_artifact_metadata(path)
    if verify:
        verify_payload(path, metadata)
    return metadata


_verified: set[tuple] = set()


def verify_payload(path: Path, metadata: ModelMetadata) -> None:
    """The artifact's (and an engine's sidecar's) bytes against the digest its metadata records: an
    IntegrityError on mismatch, a warning when none is recorded. Once per file per process unless it changes."""
    files = payload_files(path)
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key in _verified:
        return
    try:
        parts = [f.read_bytes() for f in files]
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it to verify ({exc.strerror or exc}); check the file") from None
    what = f" (with {files[1].name})" if len(files) > 1 else ""
    integrity.check(path, parts, metadata.payload_sha256, what)
    _verified.add(key)


# --- the child-process probe ----------------------------------------------------------------------

_probed: set[tuple[str, int, int]] = set()


def probe_in_child(path: str | Path, runtime: str, code: str, args: list[str],
                   timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Run `python -c code *args` (which loads `path` with `runtime` and runs a frame) in a child process.

    A child that dies by a signal, hangs, or fails with an error becomes a one-line ModelFileError, and
    the caller never hands the file to the runtime itself. A file that passed is not probed again by
    this process unless it changes.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _probed:
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        result = subprocess.run([sys.executable, "-c", code, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{path}: {runtime} did not finish loading it within {timeout_s:.0f} s in a test "
                             "process; the file is damaged or hostile, re-export it") from None
    if result.returncode < 0:
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        raise ModelFileError(f"{path}: {runtime} crashes on this file ({name} in a test process); the file is "
                             "damaged or hostile, re-export it with `segnet-edge convert`")
    if result.returncode != 0:
        raise ModelFileError(f"{path}: {runtime} cannot load or run it ({_last_error(result.stderr)}); "
                             "re-export it with `segnet-edge convert`")
    _probed.add(key)


def _last_error(stderr: bytes) -> str:
    """The exception line a failed probe printed last (runtime log lines before it are noise)."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"
