"""The `.tflite` file: the one flatbuffer reader, its static check, and the segnet-edge metadata in it.

A model copied to a board over a flaky link may be truncated, bit-flipped or foreign, and LiteRT
handed such bytes can die with a signal (see segnet_edge.device.artifact_check). So before it sees
a file, a bounds-checked walk in pure Python (numpy-free, no schema package, no TensorFlow) checks
every table, vector and index against the TFLite schema; the same reader finds the metadata entry
named "segnet_edge", whose buffer holds the JSON. The host-side writer that embeds it is here too.
"""

from __future__ import annotations

import struct
from pathlib import Path

from segnet_edge.device import integrity
from segnet_edge.device.errors import ModelFileError
from segnet_edge.device.metadata import METADATA_KEY, ModelMetadata

IDENTIFIER = b"TFL3"
#: A TFLite header is 8 bytes; one-op models are far above this.
MIN_BYTES = 64

# tflite/schema.fbs field indices (the order fields are declared in each table).
MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "buffers": 4, "metadata": 6}
SUBGRAPH = {"tensors": 0, "inputs": 1, "outputs": 2, "operators": 3}
TENSOR = {"shape": 0, "type": 1, "buffer": 2, "sparsity": 6}
OPERATOR = {"opcode_index": 0, "inputs": 1, "outputs": 2, "intermediates": 8}
BUFFER = {"data": 0, "offset": 1, "size": 2}
METADATA = {"name": 0, "buffer": 1}
#: TensorType -> bytes per element, for the fixed-size types (STRING, RESOURCE, VARIANT, INT4 are not).
ITEM_SIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2, 18: 2}

Table = tuple[int, int, int]  # (table position, vtable position, vtable length)


class Damage(Exception):
    """The flatbuffer is not what the TFLite schema allows (the message says where)."""


class FlatBuffer:
    """Bounds-checked reads of flatbuffer tables and vectors (every offset is checked before use)."""

    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)

    def _unpack(self, fmt: str, pos: int, what: str):
        if pos < 0 or pos + struct.calcsize(fmt) > self.size:
            raise Damage(f"{what} at byte {pos} is past the end of the file ({self.size} bytes)")
        return struct.unpack_from(fmt, self.data, pos)[0]

    def root(self) -> Table:
        return self.table(self._unpack("<I", 0, "root offset"), "model")

    def table(self, pos: int, what: str) -> Table:
        """(table position, vtable position, vtable length) after checking both lie in the file."""
        vtable = pos - self._unpack("<i", pos, what)
        vtable_len = self._unpack("<H", vtable, f"{what} vtable")
        object_len = self._unpack("<H", vtable + 2, f"{what} vtable")
        if vtable_len < 4 or vtable_len % 2 or vtable + vtable_len > self.size or pos + object_len > self.size:
            raise Damage(f"{what} has a broken vtable")
        return pos, vtable, vtable_len

    def field(self, table: Table, index: int, what: str) -> int | None:
        pos, vtable, vtable_len = table
        slot = 4 + 2 * index
        if slot + 2 > vtable_len:
            return None
        offset = self._unpack("<H", vtable + slot, what)
        if not offset:
            return None
        object_len = self._unpack("<H", vtable + 2, what)
        if offset >= object_len:
            raise Damage(f"{what} lies outside its table")
        return pos + offset

    def scalar(self, table: Table, index: int, fmt: str, what: str, default: int = 0) -> int:
        pos = self.field(table, index, what)
        return default if pos is None else self._unpack(fmt, pos, what)

    def vector(self, table: Table, index: int, item_size: int, what: str) -> tuple[int, int]:
        """(first element position, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index, what)
        if pos is None:
            return 0, 0
        start = pos + self._unpack("<I", pos, what)
        length = self._unpack("<I", start, what)
        if start + 4 + length * item_size > self.size:
            raise Damage(f"{what} ({length} items) runs past the end of the file")
        return start + 4, length

    def bytes_of(self, table: Table, index: int, what: str) -> bytes | None:
        """A byte vector (or string) field; None when absent."""
        if self.field(table, index, what) is None:
            return None
        start, length = self.vector(table, index, 1, what)
        return self.data[start : start + length]

    def ints(self, table: Table, index: int, what: str) -> list[int]:
        start, length = self.vector(table, index, 4, what)
        return list(struct.unpack_from(f"<{length}i", self.data, start)) if length else []

    def tables(self, table: Table, index: int, what: str) -> list[Table]:
        start, length = self.vector(table, index, 4, what)
        found = []
        for i in range(length):
            element = start + 4 * i
            found.append(self.table(element + self._unpack("<I", element, what), f"{what}[{i}]"))
        return found


def _require_identifier(data: bytes) -> None:
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise Damage("no TFL3 identifier: not a TFLite flatbuffer")


# --- the static check -------------------------------------------------------------------------


def walk(data: bytes) -> None:
    """Raise Damage unless `data` is a structurally sound TFLite model: every table, vector and index in
    range, every constant tensor's buffer the size its shape says."""
    _require_identifier(data)
    fb = FlatBuffer(data)
    model = fb.root()
    version = fb.scalar(model, MODEL["version"], "<I", "model version")
    if version != 3:
        raise Damage(f"schema version {version}, not 3")
    opcode_count = fb.vector(model, MODEL["operator_codes"], 4, "operator codes")[1]
    buffers = fb.tables(model, MODEL["buffers"], "buffers")
    buffer_sizes = [_buffer_size(fb, buffer, i) for i, buffer in enumerate(buffers)]
    subgraphs = fb.tables(model, MODEL["subgraphs"], "subgraphs")
    if not subgraphs:
        raise Damage("no subgraph")
    for g, subgraph in enumerate(subgraphs):
        tensors = fb.tables(subgraph, SUBGRAPH["tensors"], f"subgraph {g} tensors")
        count = len(tensors)
        for t, tensor in enumerate(tensors):
            _check_tensor(fb, tensor, f"subgraph {g} tensor {t}", buffer_sizes)
        for key in ("inputs", "outputs"):
            for index in fb.ints(subgraph, SUBGRAPH[key], f"subgraph {g} {key}"):
                if not 0 <= index < count:
                    raise Damage(f"subgraph {g} {key} name tensor {index} of {count}")
        for o, operator in enumerate(fb.tables(subgraph, SUBGRAPH["operators"], f"subgraph {g} operators")):
            opcode = fb.scalar(operator, OPERATOR["opcode_index"], "<I", f"operator {o} opcode")
            if opcode >= opcode_count:
                raise Damage(f"subgraph {g} operator {o} uses opcode {opcode} of {opcode_count}")
            for key in ("inputs", "outputs", "intermediates"):
                for index in fb.ints(operator, OPERATOR[key], f"operator {o} {key}"):
                    if not -1 <= index < count:  # -1: an optional input left out
                        raise Damage(f"subgraph {g} operator {o} {key} name tensor {index} of {count}")


def _buffer_size(fb: FlatBuffer, buffer: Table, index: int) -> int:
    """Bytes a buffer holds, inline or (models over 2 GB) after the flatbuffer at offset/size."""
    length = fb.vector(buffer, BUFFER["data"], 1, f"buffer {index} data")[1]
    if length:
        return length
    offset = fb.scalar(buffer, BUFFER["offset"], "<Q", f"buffer {index} offset")
    size = fb.scalar(buffer, BUFFER["size"], "<Q", f"buffer {index} size")
    if offset and offset + size > fb.size:
        raise Damage(f"buffer {index} ({size} bytes at {offset}) runs past the end of the file")
    return size if offset else 0


def _check_tensor(fb: FlatBuffer, tensor: Table, what: str, buffer_sizes: list[int]) -> None:
    shape = fb.ints(tensor, TENSOR["shape"], f"{what} shape")
    if any(d < -1 for d in shape):
        raise Damage(f"{what} has shape {shape}")
    buffer = fb.scalar(tensor, TENSOR["buffer"], "<I", f"{what} buffer")
    if buffer >= len(buffer_sizes):
        raise Damage(f"{what} uses buffer {buffer} of {len(buffer_sizes)}")
    stored = buffer_sizes[buffer]
    item = ITEM_SIZE.get(fb.scalar(tensor, TENSOR["type"], "<b", f"{what} type"))
    sparse = fb.field(tensor, TENSOR["sparsity"], f"{what} sparsity") is not None
    if stored and item and not sparse and min(shape, default=1) >= 0:
        elements = 1
        for d in shape:
            elements *= d
        if elements * item != stored:
            raise Damage(f"{what} has shape {shape} ({elements * item} bytes) but its buffer holds {stored}")


def check_file(path: Path) -> None:
    """The walk over the file's bytes; one-line ModelFileError naming the damage."""
    try:
        walk(Path(path).read_bytes())
    except Damage as exc:
        raise ModelFileError(f"{path}: damaged artifact (TFLite: {exc}); re-export it with `segnet-edge convert`") from None


# --- the metadata -----------------------------------------------------------------------------


def read_metadata_bytes(data: bytes, name: str = METADATA_KEY) -> bytes | None:
    """The named metadata buffer of a TFLite flatbuffer, or None when it has none; Damage when the
    bytes on the way to it are out of range."""
    fb = FlatBuffer(data)
    model = fb.root()
    if fb.field(model, MODEL["buffers"], "buffers") is None:
        return None
    buffers = fb.tables(model, MODEL["buffers"], "buffers")
    for i, entry in enumerate(fb.tables(model, MODEL["metadata"], "metadata")):
        if fb.bytes_of(entry, METADATA["name"], f"metadata {i} name") != name.encode():
            continue
        index = fb.scalar(entry, METADATA["buffer"], "<I", f"metadata {i} buffer")
        if index >= len(buffers):
            raise Damage("metadata buffer index out of range")
        buffer = buffers[index]
        inline = fb.bytes_of(buffer, BUFFER["data"], "metadata buffer data")
        if inline is not None:
            return inline
        offset_field = fb.field(buffer, BUFFER["offset"], "metadata buffer offset")
        size_field = fb.field(buffer, BUFFER["size"], "metadata buffer size")
        if offset_field is not None and size_field is not None:  # buffers stored after the flatbuffer
            offset = fb.scalar(buffer, BUFFER["offset"], "<Q", "metadata buffer offset")
            size = fb.scalar(buffer, BUFFER["size"], "<Q", "metadata buffer size")
            if offset + size > len(data):
                raise Damage("metadata buffer past the end of the file")
            return data[offset : offset + size]
        return b""
    return None


def read_metadata_json(path: Path) -> bytes | None:
    """The segnet-edge metadata JSON the file carries, None when it has none."""
    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != IDENTIFIER:
        raise ModelFileError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier); re-export it")
    try:
        return read_metadata_bytes(data)
    except Damage as exc:
        raise ModelFileError(f"{path}: damaged artifact ({exc}); re-export it with `segnet-edge convert`") from None


def embed_metadata(flatbuffer: bytes, metadata: ModelMetadata) -> bytes:
    """Host side: the TFLite model with `metadata` added (replacing an older segnet_edge entry), sealed.
    Needs TensorFlow's schema module, imported here only, so the board never loads it."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(flatbuffer))
    payload = integrity.for_writing(metadata).dumps().encode()
    buffer = schema.BufferT()
    buffer.data = list(payload)
    model.buffers.append(buffer)
    entries = [m for m in (model.metadata or []) if (m.name or b"") not in (METADATA_KEY, METADATA_KEY.encode())]
    entry = schema.MetadataT()
    entry.name = METADATA_KEY
    entry.buffer = len(model.buffers) - 1
    model.metadata = [*entries, entry]
    return integrity.seal([bytes(flatbuffer_utils.convert_object_to_bytearray(model))])[0]
