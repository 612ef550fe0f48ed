"""The `.onnx` file: its static check and the segnet-edge metadata in its `metadata_props`.

The check is `onnx.checker` when the onnx package is present (a board with onnxruntime only
relies on ONNX Runtime's own checks, which reject damage in process). The metadata is the
model's `metadata_props` key "segnet_edge"; the host-side writers that embed and seal it are here too.
"""

from __future__ import annotations

from pathlib import Path

from segnet_edge.device import integrity
from segnet_edge.device.errors import ModelFileError
from segnet_edge.device.metadata import METADATA_KEY, ModelMetadata

#: Smallest plausible ONNX file (a truncated copy is refused in one line before protobuf sees it).
MIN_BYTES = 16


def check_file(path: Path) -> None:
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


def read_metadata_json(path: Path) -> bytes | None:
    """metadata_props["segnet_edge"], through onnx when installed, else ONNX Runtime's model metadata."""
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


def embed_metadata(model, metadata: ModelMetadata, digest: str | None = None):
    """Set metadata_props["segnet_edge"] on an onnx.ModelProto (in place) and return it. Unsealed (digest
    None): write the model with `sealed_bytes` instead to have it verified on the board."""
    for prop in list(model.metadata_props):
        if prop.key == METADATA_KEY:
            model.metadata_props.remove(prop)
    prop = model.metadata_props.add()
    prop.key, prop.value = METADATA_KEY, integrity.for_writing(metadata, digest).dumps()
    return model


def sealed_bytes(model, metadata: ModelMetadata) -> bytes:
    """The serialized onnx.ModelProto with `metadata` embedded (in place, as embed_metadata) and sealed."""
    embed_metadata(model, metadata, integrity.PLACEHOLDER)
    return integrity.seal([model.SerializeToString()])[0]
