"""Prove each artifact against the Keras model on held-out frames, through the board's own runtime code.

Artifacts run through `segnet_edge.device.backends` (the code the Jetson runs), fed
by `device/preprocess` and quantized/dequantized with the parameters in the artifact's
own metadata. So a pass here also proves that the metadata matches the tensors.
Scores come from `segnet_edge.metrics`, like every other score in the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segnet_edge.calibration.representative import CalibrationSet
from segnet_edge.convert.context import Check
from segnet_edge.convert.options import Targets
from segnet_edge.convert.registry import ExportFormat
from segnet_edge.device.errors import UsageError
from segnet_edge.device.metadata import ModelMetadata, Normalization
from segnet_edge.device.postprocess import label_map
from segnet_edge.metrics import argmax_agreement, confusion_matrix, scores


@dataclass
class ParityFrames:
    """Model inputs (float32 (N, H, W, 3), made by device/preprocess from `images`, the uint8 BGR frames at the
    input size) and labels when known."""

    inputs: np.ndarray
    labels: np.ndarray | None
    source: str
    held_out: bool  # False when they are calibration frames (nothing else was given)
    images: np.ndarray | None = None

    def to_json(self) -> dict:
        return {"source": self.source, "frames": int(len(self.inputs)), "labelled": self.labels is not None,
                "held_out": self.held_out}


def parity_frames(metadata: ModelMetadata, calib: CalibrationSet | None, eval_data: str | Path | None = None,
                  eval_split: str = "val", limit: int = 8) -> ParityFrames | None:
    """Held-out frames: --eval-data's split, else the calibration set's held-out frames, else its frames."""
    from segnet_edge.device.preprocess import normalize, resize_frame

    size, norm = metadata.input_size, metadata.normalization
    if eval_data is not None:
        from segnet_edge.data.layout import find_samples, load_class_info
        from segnet_edge.data.loader import load_samples
        from segnet_edge.device.errors import DataError

        samples = find_samples(eval_data, eval_split)
        picked = [samples[int(i)] for i in np.linspace(0, len(samples) - 1, min(limit, len(samples)))]
        labelled = all(s.label is not None for s in picked)
        info = None
        if labelled:
            try:
                info = load_class_info(eval_data, ignore_label=metadata.ignore_label,
                                       num_classes=metadata.num_classes)
            except DataError:
                info = None
        loaded = load_samples(picked, size, info)
        frames, labels = loaded.images, loaded.labels
        source, held_out = f"{eval_data} ({eval_split} split)", True
    elif calib is not None and len(calib.holdout_frames):
        frames, labels = calib.holdout_frames[:limit], calib.holdout_labels
        labels = None if labels is None else labels[:limit]
        source, held_out = f"held-out frames of the calibration set ({calib.recipe.source})", True
    elif calib is not None:
        frames, labels = calib.frames[:limit], None
        source, held_out = f"calibration frames ({calib.recipe.source}); none held out", False
    else:
        return None
    images = np.stack([resize_frame(frame, size) for frame in frames])
    return ParityFrames(normalize(images, norm).astype(np.float32), labels, source, held_out, images)


#: Top-1 minus top-2 probability below which a pixel counts as a near tie.
CONFIDENT_MARGIN = 0.1
#: Pixels this close to a class edge of Keras' label map count as edge pixels in the parity report.
EDGE_RADIUS = 1
#: Half a grey level: uniform input noise below a camera's own 8-bit step.
INPUT_NOISE_GREY_LEVELS = 0.5


@dataclass
class Sensitivity:
    """How much Keras disagrees with itself under input noise no camera could avoid: the yardstick for
    int8's disagreement (an int8 graph perturbs every layer at least this much)."""

    noise_grey_levels: float
    agreement: float  # Keras(x + noise) vs Keras(x)
    near_tie_share: float  # pixels with Keras top-2 margin below CONFIDENT_MARGIN

    def to_json(self) -> dict:
        return {"noise_grey_levels": self.noise_grey_levels, "agreement": self.agreement,
                "near_tie_share": self.near_tie_share, "confident_margin": CONFIDENT_MARGIN}


def top2_margin(probabilities: np.ndarray) -> np.ndarray:
    top = np.partition(np.asarray(probabilities, np.float32), -2, axis=-1)
    return top[..., -1] - top[..., -2]


def sensitivity(predict, images: np.ndarray, reference: np.ndarray, norm: Normalization,
                seed: int = 0) -> Sensitivity:
    """`predict`: float inputs -> Keras probabilities. The noise is added to the uint8 `images` in grey levels,
    before THE preprocessing (whatever it does after the mean and scale, such as SegNet-Basic's input LRN)."""
    from segnet_edge.device.preprocess import normalize

    noise = np.random.default_rng(seed).uniform(-INPUT_NOISE_GREY_LEVELS, INPUT_NOISE_GREY_LEVELS, images.shape)
    noisy = predict(normalize(images.astype(np.float32) + noise.astype(np.float32), norm).astype(np.float32))
    return Sensitivity(INPUT_NOISE_GREY_LEVELS, argmax_agreement(reference, noisy),
                       float(np.mean(top2_margin(reference) < CONFIDENT_MARGIN)))


@dataclass
class Parity:
    frames: int
    max_abs_diff: float  # of class probabilities
    mean_abs_diff: float
    agreement: float  # fraction of pixels whose argmax class matches Keras'
    miou: float | None = None  # in [0, 1], when labels exist
    reference_miou: float | None = None
    #: The same agreement over the pixels where Keras' top-1 and top-2 probabilities differ by at
    #: least CONFIDENT_MARGIN: the pixels a user would act on (near ties flip under any rounding).
    confident_agreement: float | None = None
    confident_pixels: int = 0
    #: Pixels within EDGE_RADIUS of a class edge in Keras' own label map: their share of all pixels, their share
    #: of the pixels that disagree, and the agreement everywhere else. int8 moves edges by a pixel; that is
    #: the part a user sees as a jittery outline, not as a wrong region.
    edge_share: float | None = None
    edge_share_of_disagreement: float | None = None
    off_edge_agreement: float | None = None
    off_edge_pixels: int | None = None  # how many pixels that agreement is over (a few, for an undecided model)

    @property
    def miou_delta_points(self) -> float | None:
        if self.miou is None or self.reference_miou is None:
            return None
        return 100.0 * (self.miou - self.reference_miou)

    def to_json(self) -> dict:
        return {"frames": self.frames, "max_abs_diff": self.max_abs_diff, "mean_abs_diff": self.mean_abs_diff,
                "agreement": self.agreement, "confident_agreement": self.confident_agreement,
                "confident_pixels": self.confident_pixels,
                "confident_margin": CONFIDENT_MARGIN, "edge_radius": EDGE_RADIUS, "edge_share": self.edge_share,
                "edge_share_of_disagreement": self.edge_share_of_disagreement,
                "off_edge_agreement": self.off_edge_agreement, "off_edge_pixels": self.off_edge_pixels,
                "miou": self.miou, "reference_miou": self.reference_miou, "miou_delta_points": self.miou_delta_points}


def class_edges(label_maps: np.ndarray, radius: int = 1) -> np.ndarray:
    """(N, H, W) labels -> True where another class lies within `radius` pixels (a (2r+1)^2 window)."""
    padded = np.pad(label_maps, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    height, width = label_maps.shape[1:]
    edges = np.zeros(label_maps.shape, bool)
    for dy in range(2 * radius + 1):
        for dx in range(2 * radius + 1):
            edges |= padded[:, dy:dy + height, dx:dx + width] != label_maps
    return edges


def mean_iou(probabilities: np.ndarray, labels: np.ndarray, metadata: ModelMetadata) -> float:
    cm = confusion_matrix(labels, label_map(probabilities), metadata.num_classes, metadata.ignore_label)
    return scores(cm).mean_iou


def compare(reference: np.ndarray, probabilities: np.ndarray, labels: np.ndarray | None,
            metadata: ModelMetadata) -> Parity:
    """`probabilities` may be a label map (--output labels): then there are no scores to diff (NaN)."""
    if probabilities.ndim == reference.ndim:
        diff = np.abs(reference.astype(np.float32) - probabilities.astype(np.float32))
        max_diff, mean_diff = float(diff.max()), float(diff.mean())
    else:
        max_diff = mean_diff = float("nan")
    parity = Parity(len(reference), max_diff, mean_diff, argmax_agreement(reference, probabilities))
    keras_labels = reference.argmax(-1)
    same = keras_labels == label_map(probabilities)
    confident = top2_margin(reference) >= CONFIDENT_MARGIN
    parity.confident_pixels = int(confident.sum())
    if confident.any():
        parity.confident_agreement = float(same[confident].mean())
    edges = class_edges(keras_labels, EDGE_RADIUS)
    parity.edge_share = float(edges.mean())
    if (~same).any():
        parity.edge_share_of_disagreement = float(edges[~same].mean())
    if (~edges).any():
        parity.off_edge_agreement = float(same[~edges].mean())
        parity.off_edge_pixels = int((~edges).sum())
    if labels is not None:
        parity.miou = mean_iou(probabilities, labels, metadata)
        parity.reference_miou = mean_iou(reference, labels, metadata)
    return parity


def run_artifact(path: Path, inputs: np.ndarray, batch: int = 1, runtime: str | None = None) -> np.ndarray:
    """Float probabilities (N, H, W, C) from an artifact, run as the board runs it: on the backend `runtime`
    names (an ExportFormat's), else the one its suffix picks."""
    from segnet_edge.device.backends.base import file_format, load_backend

    if batch > 1:
        if file_format(path) != "onnx":
            raise UsageError(f"{path.name}: parity runs batch-1 engines only; convert with --batch 1 to check it")
        return _run_onnx_batched(path, inputs, batch)
    with load_backend(path, runtime) as backend:
        return backend.run(inputs)


def _run_onnx_batched(path: Path, inputs: np.ndarray, batch: int) -> np.ndarray:
    """A --batch N graph: the board's backend is batch 1, so feed ONNX Runtime directly, padding the tail."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    outputs = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        padded = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
        outputs.append(session.run(None, {name: padded})[0][:len(chunk)])
    return np.concatenate(outputs)


def target_checks(fmt: ExportFormat, parity: Parity | None, targets: Targets,
                  size_ratio: float | None) -> list[Check]:
    """The issue's targets for this artifact; a target with nothing to measure is not claimed."""
    checks = []
    if parity is not None:
        if fmt.precision in ("int8", "fp16"):
            need = targets.int8_confident_agreement if fmt.is_int8 else targets.fp16_confident_agreement
            if parity.confident_agreement is not None:
                checks.append(Check(f"agreement, margin >= {CONFIDENT_MARGIN:g}", parity.confident_agreement >= need,
                                    f"{100 * parity.confident_agreement:.3f}% of {parity.confident_pixels} confident "
                                    f"pixels (target >= {100 * need:g}%)"))
        else:
            need = targets.float_agreement
            checks.append(Check("argmax agreement", parity.agreement >= need,
                                f"{100 * parity.agreement:.3f}% (target >= {100 * need:g}%)"))
        delta = parity.miou_delta_points
        if fmt.is_int8 and delta is not None:
            checks.append(Check("mIoU delta", abs(delta) <= targets.int8_miou_points,
                                f"{delta:+.2f} points (target within {targets.int8_miou_points:g})"))
    if size_ratio is not None:
        checks.append(Check(f"size vs {fmt.size_reference}", size_ratio <= targets.int8_tflite_size_ratio,
                            f"{size_ratio:.3f}x (target <= {targets.int8_tflite_size_ratio:g}x)"))
    return checks
