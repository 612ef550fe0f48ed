"""What crosses the host/board boundary beside the weights: classes, palette, sizes, normalisation.

Every artifact carries one `ModelMetadata` as JSON (inside the Keras file, the
ONNX metadata_props, the TFLite metadata table, or `<engine>.json` beside a
TensorRT engine), so the device runtime needs nothing else.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

METADATA_KEY = "segnet_edge"
#: 2: the metadata always holds `payload_sha256` (segnet_edge.device.integrity), null when unsealed, and
#: Normalization may carry the input LRN (`lrn`), which a reader that ignores it would silently skip.
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class InputLRN:
    """Caffe's across-channel local response normalisation of the normalised image (SegNet-Basic's first layer).

    A converted SegNet-Basic carries it here instead of in its graph: it is a fixed per-pixel function of
    the image, TFLite has no int8 LRN kernel (it kept the whole int8 model's input in float), and on the
    board it costs one pass over three channels. Caffe divides alpha by the window size.
    """

    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Normalization:
    """How a uint8 frame becomes the model input: reorder channels, then (x - mean) / std, then the input LRN
    when the model's own first layer was moved here (`lrn`).

    The default is Caffe/Keras VGG16's own (BGR, ImageNet means, no scaling) so
    an encoder initialised from VGG16 ImageNet weights sees what it was trained on.
    """

    channel_order: str = "BGR"
    mean: tuple[float, float, float] = (103.939, 116.779, 123.68)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    lrn: InputLRN | None = None

    def to_json(self) -> dict:
        data = {"channel_order": self.channel_order, "mean": list(self.mean), "std": list(self.std)}
        if self.lrn is not None:  # absent otherwise: files without it read as before
            data["lrn"] = self.lrn.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict) -> Normalization:
        lrn = data.get("lrn")
        return cls(
            channel_order=str(data.get("channel_order", "BGR")).upper(),
            mean=tuple(float(v) for v in data.get("mean", cls.mean)),
            std=tuple(float(v) for v in data.get("std", cls.std)),
            lrn=None if lrn is None else InputLRN(int(lrn["size"]), float(lrn["alpha"]), float(lrn["beta"]),
                                                  float(lrn["k"])),
        )


@dataclass(frozen=True)
class TensorQuantization:
    """Affine quantization of an integer model input or output: real = scale * (q - zero_point)."""

    dtype: str = "float32"
    scale: float = 1.0
    zero_point: int = 0

    @property
    def is_integer(self) -> bool:
        return self.dtype in ("int8", "uint8")


@dataclass(frozen=True)
class ModelMetadata:
    class_names: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]  # RGB, one per class
    input_size: tuple[int, int]  # (height, width)
    normalization: Normalization = field(default_factory=Normalization)
    ignore_label: int | None = 255
    arch: str = "segnet"
    alpha: float = 1.0
    unpool_mode: str = "onehot"
    #: (conv layer name, output channels) where a channel-pruned model differs from alpha's widths; None: none do
    widths: tuple[tuple[str, int], ...] | None = None
    output: str = "probabilities"  # or "labels": a uint8 label map computed inside the model
    input_quantization: TensorQuantization = field(default_factory=TensorQuantization)
    output_quantization: TensorQuantization = field(default_factory=TensorQuantization)
    format: str = "keras"
    #: sha256 of the Keras file an artifact was converted from: on a board, which training run made it
    source_sha256: str | None = None
    #: sha256 of the file carrying this metadata, its own field blanked (segnet_edge.device.integrity);
    #: None: written unsealed, or read from a file older than schema version 2
    payload_sha256: str | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> dict:
        data = asdict(self)
        data["class_names"] = list(self.class_names)
        data["palette"] = [list(c) for c in self.palette]
        data["input_size"] = list(self.input_size)
        data["normalization"] = self.normalization.to_json()
        data["widths"] = None if self.widths is None else {name: int(w) for name, w in self.widths}
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, data: dict) -> ModelMetadata:
        version = int(data.get("schema_version", SCHEMA_VERSION))
        if version > SCHEMA_VERSION:
            raise ValueError(f"metadata schema {version} is newer than this segnet-edge's {SCHEMA_VERSION}: "
                             "upgrade segnet-edge here")
        if int(data.get("schema_version", 1)) >= 2 and "payload_sha256" not in data:  # integrity.DIGEST_FIELD
            raise ValueError("the payload_sha256 field is missing")  # damage to its name, not an older file
        return cls(
            class_names=tuple(str(n) for n in data["class_names"]),
            palette=tuple(tuple(int(v) for v in c) for c in data["palette"]),
            input_size=(int(data["input_size"][0]), int(data["input_size"][1])),
            normalization=Normalization.from_json(data.get("normalization", {})),
            ignore_label=None if data.get("ignore_label") is None else int(data["ignore_label"]),
            arch=str(data.get("arch", "segnet")),
            alpha=float(data.get("alpha", 1.0)),
            unpool_mode=str(data.get("unpool_mode", "onehot")),
            widths=None if not data.get("widths") else tuple((str(k), int(v)) for k, v in dict(data["widths"]).items()),
            output=str(data.get("output", "probabilities")),
            input_quantization=TensorQuantization(**data.get("input_quantization", {})),
            output_quantization=TensorQuantization(**data.get("output_quantization", {})),
            format=str(data.get("format", "keras")),
            source_sha256=None if data.get("source_sha256") is None else str(data["source_sha256"]),
            payload_sha256=None if data.get("payload_sha256") is None else str(data["payload_sha256"]),
            schema_version=version,
        )

    @classmethod
    def loads(cls, text: str | bytes) -> ModelMetadata:
        return cls.from_json(json.loads(text))


def default_palette(count: int) -> tuple[tuple[int, int, int], ...]:
    """Distinct colours for classes that come without a palette."""
    import colorsys

    colours = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb((i * 0.618033988749895) % 1.0, 0.65, 0.95)
        colours.append((int(r * 255), int(g * 255), int(b * 255)))
    return tuple(colours)


#: CamVid's 11 classes as the SegNet authors label them (void = 11), with SegNet's palette.
CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree",
    "SignSymbol", "Fence", "Car", "Pedestrian", "Bicyclist",
)  # fmt: skip
CAMVID_PALETTE = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0),
    (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)  # fmt: skip
CAMVID_IGNORE_LABEL = 11
