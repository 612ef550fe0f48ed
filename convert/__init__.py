"""`convert_model`: one trained Keras SegNet in, every deployable artifact out, each proven against Keras.

Order of work, so that bad input costs nothing and leaves nothing behind:
1. everything that can be checked without TensorFlow (model file and metadata,
   format names, output folder, calibration set size, int8 without calibration);
2. artifacts are written into a staging folder beside OUT;
3. only when every format has been handled are the artifacts, `report.json` and
   `report.md` moved into OUT (each by an atomic rename). A failure leaves OUT as
   it was; the model itself is never a destination.
"""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from segnet_edge.calibration.representative import (
    DEFAULT_CALIB_FRAMES,
    CalibrationRecipe,
    CalibrationSet,
    load_calibration_set,
    load_or_build,
)
from segnet_edge.convert.context import Check, ConversionError, ExportContext, ExportResult
from segnet_edge.convert.options import ConvertOptions, Targets
from segnet_edge.convert.parity import (
    Parity,
    compare,
    parity_frames,
    run_artifact,
    sensitivity,
    target_checks,
)
from segnet_edge.convert.registry import FORMATS, GROUPS, Availability, ExportFormat, resolve_formats
from segnet_edge.convert.report import ArtifactReport, ConvertReport
from segnet_edge.convert.source import ModelSource, open_source
from segnet_edge.device.errors import UsageError

__all__ = [
    "convert_model", "default_out_dir", "ConvertOptions", "Targets", "ConvertReport", "ArtifactReport", "Parity",
    "Check", "ConversionError", "FORMATS", "GROUPS", "resolve_formats",
]

CALIB_FILE = "calib.npz"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def default_out_dir(model_path: str | Path) -> Path:
    """`models/segnet.h5` -> `models/segnet_export/`: next to the model, never the model."""
    model_path = Path(model_path)
    return model_path.parent / f"{model_path.stem}_export"


def convert_model(
    model_path: str | Path,
    out_dir: str | Path | None = None,
    formats: Sequence[str] | str | None = None,
    calib: str | Path | CalibrationSet | None = None,
    *,
    calib_data: str | Path | None = None,
    eval_data: str | Path | None = None,
    options: ConvertOptions | None = None,
    log: Callable[[str], None] | None = None,
) -> ConvertReport:
    """Write the artifacts of `formats` (default: options.formats) for `model_path` into `out_dir`.

    calib: a `calib.npz` (or a loaded CalibrationSet); calib_data: a dataset, image folder or
    video to build one from (stored as OUT/calib.npz, reused next time). eval_data: a labelled
    dataset whose `options.eval_split` gives the parity frames; by default they are the
    calibration set's held-out frames. Formats asked for by name that need calibration fail
    without it; by default they are skipped with the reason in the report.
    """
    start = time.perf_counter()
    options = options or ConvertOptions()
    log = log or (lambda message: None)
    model_path = Path(model_path)

    # 1. Checks that need no TensorFlow.
    source = open_source(model_path, options, log)
    explicit = formats is not None
    chosen = resolve_formats(formats if explicit else list(options.formats))
    out = Path(out_dir) if out_dir is not None else default_out_dir(model_path)
    _check_out_dir(out, model_path)
    metadata = source.metadata
    size = metadata.input_size
    if calib is not None and calib_data is not None:
        raise UsageError("give --calib or --calib-data, not both")
    calibration = _load_calibration(calib, size)
    recipe = None
    if calib_data is not None:
        recipe = CalibrationRecipe(source=str(calib_data), size=size, count=options.calib_count or DEFAULT_CALIB_FRAMES,
                                   seed=options.seed, split=options.calib_split).resolved()
    if eval_data is not None:
        from segnet_edge.data.layout import find_samples

        find_samples(eval_data, options.eval_split)
    _check_mixed_precision(options, chosen, source)
    uncalibrated = [f.name for f in chosen if source.needs_calibration(f) and calibration is None and recipe is None]
    if uncalibrated and explicit:
        raise UsageError(f"{', '.join(uncalibrated)} need(s) a calibration set: give --calib calib.npz or "
                         f"--calib-data SRC ({source.calibration_hint})")

    # 2. Stage every artifact.
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-", dir=out.parent))
    try:
        staged: list[Path] = []
        if recipe is not None:
            log(f"calibration set from {recipe.source}")
            calibration, reused = load_or_build(out / CALIB_FILE, recipe, allow_fewer=options.calib_count is None,
                                                save_to=staging / CALIB_FILE)
            log(f"{'reusing' if reused else 'built'} {out / CALIB_FILE}: {len(calibration)} frames")
            if not reused:
                staged.append(staging / CALIB_FILE)
        ctx = ExportContext(source, options, staging, calibration, log)
        frames = parity_frames(metadata, calibration, eval_data, options.eval_split, options.parity_frames)
        reference = noise_floor = None
        if frames is not None:
            keras_model = source.model()
            reference = keras_model.predict(frames.inputs, batch_size=1, verbose=0)
            noise_floor = sensitivity(lambda x: keras_model.predict(x, batch_size=1, verbose=0), frames.images,
                                      reference, metadata.normalization, options.seed)
        ctx.frames, ctx.reference = frames, reference
        artifacts: list[ArtifactReport] = []
        for fmt in chosen:
            report = _export_one(ctx, fmt, uncalibrated, frames, reference, artifacts, log)
            artifacts.append(report)
            result = ctx.results.get(fmt.name)
            if result is not None:
                staged += [p for p in [result.path, *result.extra_files] if p is not None and p.is_file()]
        report = ConvertReport(
            model=str(model_path), out_dir=str(out), options=options, metadata=metadata, qat=source.qat,
            calibration=None if calibration is None else calibration.to_json(),
            parity_frames=None if frames is None else frames.to_json(), artifacts=artifacts,
            sensitivity=noise_floor, equalization=ctx.equalization,
        )
        report.seconds = time.perf_counter() - start
        from segnet_edge.atomic import write_text_atomic

        write_text_atomic(staging / REPORT_JSON, _dumps(report.to_json()))
        write_text_atomic(staging / REPORT_MD, report.to_markdown())
        staged += [staging / REPORT_JSON, staging / REPORT_MD]

        # 3. Publish together.
        out.mkdir(parents=True, exist_ok=True)
        for path in staged:
            os.replace(path, out / path.name)
        return report
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_mixed_precision(options: ConvertOptions, chosen: list[ExportFormat], source: ModelSource) -> None:
    """--keep-float / --layer-error / --precision-search: known layer names, and an artifact to apply them to."""
    from segnet_edge.convert.keep_float import check_layer_names

    measured = [flag for flag, on in (("--layer-error", options.layer_error),
                                      ("--precision-search", options.precision_search)) if on]
    if not (options.keep_float or measured):
        return
    if source.qat:
        raise UsageError("--keep-float, --layer-error and --precision-search apply to a calibrated float model; a QAT "
                         "model's int8 ranges are its own (convert the model it was quantized from)")
    check_layer_names(options.keep_float, source.stored)
    names = {fmt.name for fmt in chosen}
    if measured and "tflite-int8" not in names:
        raise UsageError(f"{' and '.join(measured)} work(s) on the int8 TFLite model: add tflite-int8 to --formats")
    if options.keep_float and not names & KEEP_FLOAT_FORMATS:
        raise UsageError(f"--keep-float applies to {', '.join(sorted(KEEP_FLOAT_FORMATS))}: add one to --formats")


#: The artifacts --keep-float leaves layers in float in.
KEEP_FLOAT_FORMATS = frozenset({"tflite-int8", "onnx-int8", "ort-int8"})


def remove_stale_staging(out: Path) -> list[Path]:
    """Staging folders of earlier runs on OUT whose process is gone (killed: SIGKILL skips `finally`)."""
    removed = []
    for folder in out.parent.glob(f".{glob.escape(out.name)}.staging-*"):
        pid = folder.name.rsplit(".staging-", 1)[1].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _export_one(ctx: ExportContext, fmt: ExportFormat, uncalibrated: list[str], frames, reference,
                done: list[ArtifactReport], log: Callable[[str], None]) -> ArtifactReport:
    report = ArtifactReport(fmt.name, None, fmt.description)
    if fmt.name in uncalibrated:
        report.skipped = "needs a calibration set (--calib or --calib-data)"
        return report
    missing = [need for need in fmt.needs if ctx.results.get(need) is None or ctx.results[need].path is None]
    if missing:
        report.skipped = f"needs {', '.join(missing)}, which was not built"
        return report
    log(f"{fmt.name}: exporting {fmt.artifact}")
    started = time.perf_counter()
    availability = Availability(True) if fmt.stages_without_runtime else fmt.available()
    result: ExportResult = (fmt.module().export(ctx, fmt) if availability.ok
                            else ExportResult(skipped=availability.reason))
    report.seconds = time.perf_counter() - started
    ctx.results[fmt.name] = result
    report.unpool_mode, report.notes, report.command = result.unpool_mode, result.notes, result.command
    report.notes = [*report.notes, *ctx.source.report_notes(fmt)]
    report.metadata, report.ops, report.checks = result.metadata, result.ops, list(result.checks)
    report.mixed_precision = result.mixed_precision
    if result.path is None:
        report.skipped = result.skipped or "not built"
        return report
    report.file = result.path.name
    report.size_bytes = result.path.stat().st_size
    if frames is not None:
        log(f"{fmt.name}: parity on {len(frames.inputs)} frames")
        probabilities = run_artifact(result.path, frames.inputs, ctx.options.batch if fmt.static_batch else 1,
                                     runtime=fmt.runtime)
        reference = ctx.source.parity_reference(fmt, frames.inputs, reference)
        report.parity = compare(reference, probabilities, frames.labels, ctx.metadata)
        if fmt.family == "tflite" and fmt.is_int8 and ctx.options.output == "probabilities":
            from segnet_edge.convert.index_share import measure_index_share

            log(f"{fmt.name}: pooling-index share of the disagreement")
            report.index_share = measure_index_share(ctx.source.model(), result.path, frames.inputs, reference)
    size_ratio = None
    reference_report = next((a for a in done if a.format == fmt.size_reference and a.size_bytes), None)
    kept_float = result.mixed_precision is not None and result.mixed_precision.kept  # its cost is reported instead
    if (reference_report is not None and reference_report.size_bytes >= ctx.options.targets.size_ratio_min_bytes
            and not kept_float):
        size_ratio = report.size_bytes / reference_report.size_bytes
    report.checks += target_checks(fmt, report.parity, ctx.options.targets, size_ratio)
    return report


def _check_out_dir(out: Path, model_path: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is a file; give a folder for --out")
    if out.resolve() == model_path.resolve():
        raise UsageError(f"{out}: is the model itself; give another folder for --out")


def _load_calibration(calib: str | Path | CalibrationSet | None, size: tuple[int, int]) -> CalibrationSet | None:
    if calib is None:
        return None
    calibration = calib if isinstance(calib, CalibrationSet) else load_calibration_set(calib)
    calibration.check_size(size, str(calib) if not isinstance(calib, CalibrationSet) else "calibration set")
    return calibration


def _dumps(data: dict) -> str:
    import json

    return json.dumps(data, indent=2, default=float) + "\n"
