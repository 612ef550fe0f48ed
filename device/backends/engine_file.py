"""A serialized TensorRT engine: it cannot carry metadata, so `<engine>.json` beside it does.

The engine itself is opaque to Python (only TensorRT can deserialize it, on the GPU it was built
for), so the static check is its size; the payload digest covers the engine and its sidecar.
"""

from __future__ import annotations

from pathlib import Path

from segnet_edge.device import integrity
from segnet_edge.device.metadata import ModelMetadata

#: Smallest plausible engine file (a truncated copy is refused in one line).
MIN_BYTES = 16


def sidecar_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def payload_files(artifact: str | Path) -> list[Path]:
    """The files the payload digest covers, in order: the engine, then its sidecar."""
    return [Path(artifact), sidecar_path(artifact)]


def read_metadata_json(path: Path) -> bytes | None:
    """The sidecar's bytes, None when there is no sidecar."""
    sidecar = sidecar_path(path)
    return sidecar.read_bytes() if sidecar.is_file() else None


def sidecar_text(metadata: ModelMetadata, engine: bytes | None = None) -> str:
    """An engine's `<engine>.json`: sealed over `engine` + itself, or unsealed when the engine is built
    elsewhere (trtexec on the board), which then runs with a warning."""
    if engine is None:
        return integrity.for_writing(metadata, None).dumps()
    text = integrity.for_writing(metadata).dumps().encode()
    return integrity.seal([engine, text])[1].decode()
