"""Score a model on a dataset split: the numbers of the SegNet paper plus a confusion matrix.

The split is read batch by batch (held in memory first when small, `loader.choose_pipeline`) and the
confusion matrix summed batch by batch, so memory stays flat in the number of frames.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from segnet_edge.atomic import atomic_path, write_text_atomic
from segnet_edge.data.layout import ClassInfo
from segnet_edge.data.loader import Split, StreamedSplit, choose_pipeline, load_samples, stream_split
from segnet_edge.metrics import SegmentationScores, accumulate_confusion, scores


@dataclass
class EvaluateConfig:
    model: str = ""
    data: str = ""
    split: str = "test"
    batch_size: int = 4
    json_path: str | None = None
    png_path: str | None = None
    colour_baseline: bool = False
    ignore_label: int | None = None
    on_bad_sample: str = "fail"
    unsafe_load: bool = False
    threads: int | None = None  # an artifact's runtime threads (None: the runtime's default)
    input_pipeline: str = "auto"  # memory | stream | auto (memory when the decoded split is small)
    verify: bool = True  # check the model file's payload digest before loading it (--no-verify: off)



@dataclass
class EvaluationReport:
    model: str
    data: str
    split: str
    frames: int
    runtime: str  # TensorFlow (Keras), or the artifact's runtime as the board runs it
    class_names: list[str]
    scores: SegmentationScores
    confusion: list[list[int]]
    baseline: SegmentationScores | None = None
    skipped: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        data = asdict(self)
        data["scores"] = self.scores.to_json()
        data["baseline"] = None if self.baseline is None else self.baseline.to_json()
        return data


def format_table(report: EvaluationReport) -> str:
    """Per-class IoU and accuracy, then the three headline numbers (baseline beside them if run)."""
    s, b = report.scores, report.baseline
    width = max(len(n) for n in report.class_names) + 2
    head = f"{'class':<{width}}{'IoU':>8}{'acc':>8}" + (f"{'colour IoU':>12}" if b else "")
    lines = [f"{report.model} on {report.data} [{report.split}], {report.frames} frames, {report.runtime}", head]
    for i, name in enumerate(report.class_names):
        row = f"{name:<{width}}{_pct(s.per_class_iou[i]):>8}{_pct(s.per_class_accuracy[i]):>8}"
        if b:
            row += f"{_pct(b.per_class_iou[i]):>12}"
        lines.append(row)
    for label, key in (("global accuracy", "global_accuracy"), ("class accuracy", "class_accuracy"),
                       ("mean IoU", "mean_iou")):
        row = f"{label:<{width}}{_pct(getattr(s, key)):>8}"
        if b:
            row += f"{'':>8}{_pct(getattr(b, key)):>12}"
        lines.append(row)
    return "\n".join(lines)


def format_comparison(reports: list[EvaluationReport]) -> str:
    """Several models on one split side by side (e.g. the Keras model, then the artifacts converted from it):
    per-class IoU, the headline numbers, and each model's mIoU change from the first."""
    width = max(len(n) for n in (*reports[0].class_names, "global accuracy", "mIoU vs [1]")) + 2
    baseline = reports[0].baseline  # --colour-baseline: fitted once, on the first model's input size
    columns = "".join(f"{f'[{i + 1}]':>8}" for i in range(len(reports))) + (f"{'colour':>8}" if baseline else "")
    lines = [f"[{i + 1}] {r.model}: {r.runtime}" for i, r in enumerate(reports)]
    lines.append(f"on {reports[0].data} [{reports[0].split}], {reports[0].frames} frames")
    lines.append(f"{'IoU':<{width}}{columns}")
    scored = [r.scores for r in reports] + ([baseline] if baseline else [])
    for c, name in enumerate(reports[0].class_names):
        lines.append(f"{name:<{width}}" + "".join(f"{_pct(x.per_class_iou[c]):>8}" for x in scored))
    for label, key in (("global accuracy", "global_accuracy"), ("class accuracy", "class_accuracy"),
                       ("mean IoU", "mean_iou")):
        lines.append(f"{label:<{width}}" + "".join(f"{_pct(getattr(x, key)):>8}" for x in scored))
    first = reports[0].scores.mean_iou
    lines.append(f"{'mIoU vs [1]':<{width}}" + "".join(f"{_points(r.scores.mean_iou - first):>8}" for r in reports))
    return "\n".join(lines)


def _points(delta: float) -> str:
    """Two decimals: the change is taken before rounding, so one decimal could contradict the rows above it."""
    return "-" if np.isnan(delta) else f"{round(100 * delta, 2) + 0.0:+.2f}"  # + 0.0: no "-0.00"


def _pct(value: float) -> str:
    return "-" if value is None or np.isnan(value) else f"{100 * value:.1f}"


def plot_confusion(cm: np.ndarray, names: list[str], path: Path) -> None:
    """Row-normalised confusion heat map (recall per true class) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with np.errstate(invalid="ignore", divide="ignore"):
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.45 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            if cm[i].sum():
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set_title("confusion (rows: true class, normalised)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def colour_baseline_scores(data: str, split_eval: Split, info: ClassInfo, input_size, on_bad_sample: str,
                           batch_size: int = 16) -> SegmentationScores:
    """The colour-only baseline fitted on the train split and scored on `split_eval`, both streamed."""
    from segnet_edge.baseline import ColourBaseline

    train = stream_split(data, "train", input_size, info, on_bad_sample)
    baseline = ColourBaseline().fit_batches(train.batches(batch_size), info.num_classes, info.ignore_label)
    if isinstance(split_eval, StreamedSplit):  # a second pass: its skips are already counted
        split_eval = replace(split_eval, skipped=[])
    cm, _ = accumulate_confusion(split_eval.batches(batch_size), baseline.predict, info.num_classes,
                                 info.ignore_label)
    return scores(cm)


def artifact_labels(backend, images: np.ndarray) -> np.ndarray:
    """Labels (N, H, W) uint8 from an active device backend, frame by frame exactly as the board makes them
    (device preprocessing, the artifact's own input quantization and runtime, the board's argmax)."""
    return np.concatenate([backend.to_labels(backend.infer(backend.prepare_input(frame))) for frame in images])


def _labelled_split(config: EvaluateConfig, metadata) -> tuple[ClassInfo, Split]:
    """The split to score: loaded and checked whole when small (before any runtime opens), else streamed,
    each batch checked as it is read."""
    from segnet_edge.data.layout import find_samples

    ignore = config.ignore_label if config.ignore_label is not None else metadata.ignore_label
    # The model's own metadata says what its classes are; labels outside them fail the load.
    info = ClassInfo(metadata.class_names, metadata.palette, ignore)
    samples = find_samples(config.data, config.split)
    pipeline, _ = choose_pipeline(len(samples), metadata.input_size, config.input_pipeline)
    if pipeline == "memory":
        return info, load_samples(samples, metadata.input_size, info, config.on_bad_sample)
    return info, StreamedSplit(samples, tuple(metadata.input_size), info, config.on_bad_sample)


def evaluate_models(config: EvaluateConfig, models: list[str]) -> list[EvaluationReport]:
    """`config` for each of `models` on the same split. Several models must share their classes; their
    reports go into one JSON file ({"reports": [...]}), and a confusion heat map takes one model."""
    from segnet_edge.device.errors import UsageError

    if len(models) == 1:
        return [evaluate(replace(config, model=models[0]))]
    if config.png_path:
        raise UsageError("--png draws one model's confusion matrix: give one model, or leave --png out")
    classes = {tuple(_metadata(m).class_names) for m in models}
    if len(classes) > 1:
        raise UsageError("the models have different classes; evaluate them one at a time")
    reports = [evaluate(replace(config, model=m, json_path=None, colour_baseline=config.colour_baseline and not i))
               for i, m in enumerate(models)]
    if config.json_path:
        write_text_atomic(config.json_path, json.dumps({"reports": [r.to_json() for r in reports]}, indent=2))
    return reports


def is_artifact(model: str | Path) -> bool:
    """A file a device backend runs (the backend registry's suffixes): scored through the board's runtime,
    not TensorFlow, so what ships is what is measured."""
    from segnet_edge.device.backends.base import is_artifact as runs_on_device

    return runs_on_device(model)


def _metadata(model: str):
    """A model's or an artifact's metadata, without loading it."""
    if is_artifact(model):
        from segnet_edge.device.artifact_metadata import read_artifact_metadata

        return read_artifact_metadata(model)
    from segnet_edge.model_io import read_metadata

    return read_metadata(model)


def evaluate(config: EvaluateConfig) -> EvaluationReport:
    # The model is checked before the data is read: a bad or unsafe model file fails first, with its own error.
    if is_artifact(config.model):
        from segnet_edge.device.backends.base import BackendOptions, load_backend

        backend = load_backend(config.model, options=BackendOptions(threads=config.threads, verify=config.verify))
        metadata = backend.metadata
        info, split = _labelled_split(config, metadata)
        # the runtime opens once the data is known good, or streaming (its own log lines come after an error)
        with backend:
            cm, frames = accumulate_confusion(split.batches(config.batch_size),
                                              lambda images: artifact_labels(backend, images), info.num_classes,
                                              info.ignore_label, "evaluate", len(split))
            runtime = backend.describe()
    else:
        from segnet_edge.data.pipeline import predict_batch
        from segnet_edge.model_io import load_model

        metadata = _metadata(config.model)
        model = load_model(config.model, unsafe=config.unsafe_load, verify=config.verify)
        info, split = _labelled_split(config, metadata)
        cm, frames = accumulate_confusion(split.batches(config.batch_size),
                                          lambda images: predict_batch(model, images, metadata.normalization),
                                          info.num_classes, info.ignore_label, "evaluate", len(split))
        runtime = "Keras (TensorFlow)"
    if not frames:
        from segnet_edge.device.errors import DataError

        raise DataError("no usable samples: every sample was skipped")
    report = EvaluationReport(
        model=str(config.model), data=str(config.data), split=config.split, frames=frames, runtime=runtime,
        class_names=list(info.names), scores=scores(cm), confusion=cm.tolist(), skipped=split.skipped,
    )
    if config.colour_baseline:
        report.baseline = colour_baseline_scores(config.data, split, info, metadata.input_size, config.on_bad_sample,
                                                 config.batch_size)
    if config.json_path:
        write_text_atomic(config.json_path, json.dumps(report.to_json(), indent=2))
    if config.png_path:
        plot_confusion(cm, list(info.names), Path(config.png_path))
    return report
