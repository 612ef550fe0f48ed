"""Read the segnet-edge metadata of a deployable artifact, whatever its format.

Each backend owns its file format (segnet_edge.device.backends: tflite_file, onnx_file,
engine_file), and with it where the metadata lives: a `.tflite` flatbuffer's metadata entry
"segnet_edge", an `.onnx` model's `metadata_props`, an engine's `<engine>.json` beside it.
This module picks the backend by the file's suffix and parses what it returns. The host-side
writers (which seal what they write: the metadata records the payload's SHA-256, verified
on the board by artifact_check) keep their names here as aliases.
"""

from __future__ import annotations

from pathlib import Path

from segnet_edge.device.backends import engine_file, onnx_file, tflite_file
from segnet_edge.device.errors import ModelFileError
from segnet_edge.device.metadata import ModelMetadata

# The names callers have always imported from here; the code lives with its file format.
TFLITE_IDENTIFIER = tflite_file.IDENTIFIER
sidecar_path = engine_file.sidecar_path
sidecar_text = engine_file.sidecar_text
embed_tflite_metadata = tflite_file.embed_metadata
embed_onnx_metadata = onnx_file.embed_metadata
sealed_onnx_bytes = onnx_file.sealed_bytes
read_tflite_metadata_bytes = tflite_file.read_metadata_bytes


def payload_files(artifact: str | Path) -> list[Path]:
    """The files the payload digest covers, in order: the artifact, and an engine's sidecar after it."""
    from segnet_edge.device.backends.base import payload_files as files

    return files(artifact)


def read_artifact_metadata(path: str | Path) -> ModelMetadata:
    """The ModelMetadata an artifact carries; one-line ModelFileError when it has none."""
    from segnet_edge.device.backends.base import artifact_suffixes, backend_for_file

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; check the path")
    backend = backend_for_file(path)
    if backend is None:
        raise ModelFileError(f"{path}: unknown artifact type {path.suffix.lower()!r}; give a "
                             f"{', '.join(artifact_suffixes())} file")
    try:
        text = backend.read_metadata_json(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: damaged artifact ({exc}); re-export it with `segnet-edge convert`") from None
    if text is None:
        raise ModelFileError(
            f"{path}: carries no segnet-edge metadata; export it with `segnet-edge convert`"
        )
    try:
        return ModelMetadata.loads(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{path}: corrupt segnet-edge metadata ({exc}); re-export it") from None
