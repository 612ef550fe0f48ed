"""Read (and, on the host, embed) the segnet-edge metadata of a deployable artifact.

- `.tflite`: an entry named "segnet_edge" in the flatbuffer's `metadata` table,
  its buffer holding the JSON. Read here with a bounds-checked flatbuffer walk
  in pure Python, so the board needs neither TensorFlow nor a schema package.
- `.onnx`: the model's `metadata_props` key "segnet_edge".
- `.engine` / `.plan`: TensorRT engines cannot carry it, so `<engine>.json` beside it.

The writers here seal what they write: the metadata records the payload's SHA-256
(segnet_edge.device.integrity), which artifact_check verifies on the board.
"""

from __future__ import annotations

import struct
from pathlib import Path

from segnet_edge.device import integrity
from segnet_edge.device.errors import ModelFileError
from segnet_edge.device.metadata import METADATA_KEY, ModelMetadata

TFLITE_IDENTIFIER = b"TFL3"
_MODEL_BUFFERS, _MODEL_METADATA = 4, 6  # field indices in tflite's schema.fbs `table Model`
_METADATA_NAME, _METADATA_BUFFER = 0, 1  # `table Metadata`
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2  # `table Buffer`


ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def payload_files(artifact: str | Path) -> list[Path]:
    """The files the payload digest covers, in order: the artifact, and an engine's sidecar after it."""
    artifact = Path(artifact)
    return [artifact, sidecar_path(artifact)] if artifact.suffix.lower() in ENGINE_SUFFIXES else [artifact]


class _FlatBuffer:
    """Just enough of the flatbuffers wire format to find one metadata entry."""

    def __init__(self, data: bytes):
        self.data = data

    def _u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.data, pos)[0]

    def _u64(self, pos: int) -> int:
        return struct.unpack_from("<Q", self.data, pos)[0]

    def root(self) -> int:
        return self._u32(0)

    def field(self, table: int, index: int) -> int | None:
        vtable = table - struct.unpack_from("<i", self.data, table)[0]
        vtable_size = struct.unpack_from("<H", self.data, vtable)[0]
        slot = 4 + 2 * index
        if slot + 2 > vtable_size:
            return None
        offset = struct.unpack_from("<H", self.data, vtable + slot)[0]
        return table + offset if offset else None

    def vector(self, field_pos: int) -> tuple[int, int]:
        start = field_pos + self._u32(field_pos)
        length = self._u32(start)
        if start + 4 + length > len(self.data):
            raise struct.error("vector past the end of the file")
        return start + 4, length

    def table_in_vector(self, start: int, index: int) -> int:
        element = start + 4 * index
        return element + self._u32(element)

    def bytes_of(self, field_pos: int) -> bytes:
        start, length = self.vector(field_pos)
        return self.data[start : start + length]

    def uint(self, field_pos: int | None) -> int:
        return 0 if field_pos is None else self._u32(field_pos)


def read_tflite_metadata_bytes(data: bytes, name: str = METADATA_KEY) -> bytes | None:
    """The named metadata buffer of a TFLite flatbuffer, or None when it has none."""
    fb = _FlatBuffer(data)
    model = fb.root()
    metadata_field = fb.field(model, _MODEL_METADATA)
    buffers_field = fb.field(model, _MODEL_BUFFERS)
    if metadata_field is None or buffers_field is None:
        return None
    entries, count = fb.vector(metadata_field)
    buffers, buffer_count = fb.vector(buffers_field)
    for i in range(count):
        entry = fb.table_in_vector(entries, i)
        name_field = fb.field(entry, _METADATA_NAME)
        if name_field is None or fb.bytes_of(name_field) != name.encode():
            continue
        index = fb.uint(fb.field(entry, _METADATA_BUFFER))
        if index >= buffer_count:
            raise struct.error("metadata buffer index out of range")
        buffer = fb.table_in_vector(buffers, index)
        data_field = fb.field(buffer, _BUFFER_DATA)
        if data_field is not None:
            return fb.bytes_of(data_field)
        offset_field, size_field = fb.field(buffer, _BUFFER_OFFSET), fb.field(buffer, _BUFFER_SIZE)
        if offset_field is not None and size_field is not None:  # buffers stored after the flatbuffer
            offset, size = fb._u64(offset_field), fb._u64(size_field)
            if offset + size > len(data):
                raise struct.error("metadata buffer past the end of the file")
            return data[offset : offset + size]
        return b""
    return None


def read_artifact_metadata(path: str | Path) -> ModelMetadata:
    """The ModelMetadata an artifact carries; one-line ModelFileError when it has none."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; check the path")
    suffix = path.suffix.lower()
    try:
        if suffix == ".tflite":
            data = path.read_bytes()
            if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
                raise ModelFileError(f"{path}: not a TFLite flatbuffer (no TFL3 identifier); re-export it")
            text = read_tflite_metadata_bytes(data)
        elif suffix == ".onnx":
            text = _read_onnx_metadata(path)
        elif suffix in ENGINE_SUFFIXES:
            sidecar = sidecar_path(path)
            text = sidecar.read_bytes() if sidecar.is_file() else None
        else:
            raise ModelFileError(f"{path}: unknown artifact type {suffix!r}; give a .tflite, .onnx or .engine file")
    except (struct.error, OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: damaged artifact ({exc}); re-export it with `segnet-edge convert`") from None
    if text is None:
        raise ModelFileError(
            f"{path}: carries no segnet-edge metadata; export it with `segnet-edge convert`"
        )
    try:
        return ModelMetadata.loads(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: corrupt segnet-edge metadata ({exc}); re-export it") from None


def _read_onnx_metadata(path: Path) -> bytes | None:
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            model = onnx.load(str(path), load_external_data=False)
        except Exception as exc:  # noqa: BLE001 - protobuf raises several types on damage
            raise ModelFileError(f"{path}: not a readable ONNX model ({exc.__class__.__name__}); re-export it") from None
        for prop in model.metadata_props:
            if prop.key == METADATA_KEY:
                return prop.value.encode()
        return None
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001
        raise ModelFileError(f"{path}: not a readable ONNX model ({exc.__class__.__name__}); re-export it") from None
    value = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return None if value is None else value.encode()


# --- host side: embedding ---------------------------------------------------------------


def embed_tflite_metadata(flatbuffer: bytes, metadata: ModelMetadata) -> bytes:
    """Return the TFLite model with `metadata` added (replacing an older segnet_edge entry), sealed."""
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


def embed_onnx_metadata(model, metadata: ModelMetadata, digest: str | None = None):
    """Set metadata_props["segnet_edge"] on an onnx.ModelProto (in place) and return it. Unsealed (digest
    None): write the model with `sealed_onnx_bytes` instead to have it verified on the board."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, integrity.for_writing(metadata, digest).dumps()
    return model


def sealed_onnx_bytes(model, metadata: ModelMetadata) -> bytes:
    """The serialized onnx.ModelProto with `metadata` embedded (in place, as embed_onnx_metadata) and sealed."""
    embed_onnx_metadata(model, metadata, integrity.PLACEHOLDER)
    return integrity.seal([model.SerializeToString()])[0]


def sidecar_text(metadata: ModelMetadata, engine: bytes | None = None) -> str:
    """An engine's `<engine>.json`: sealed over `engine` + itself, or unsealed when the engine is built
    elsewhere (trtexec on the board), which then runs with a warning."""
    if engine is None:
        return integrity.for_writing(metadata, None).dumps()
    text = integrity.for_writing(metadata).dumps().encode()
    return integrity.seal([engine, text])[1].decode()
