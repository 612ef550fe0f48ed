"""TensorRT engines from the ONNX graphs, where TensorRT and a GPU exist; otherwise the trtexec line for the board.

An engine is specific to the GPU and TensorRT version that builds it, so the usual
place to build one is the Jetson itself: on a host without TensorRT the engine is
skipped, its metadata sidecar (`<engine>.json`) is written anyway, and the report
carries the exact `trtexec` command that builds the same engine on the board.
An engine built here gets its payload digest in the sidecar; one built by trtexec on
the board cannot (the sidecar predates it), so it loads with a one-line warning.

int8 comes from the QDQ graph by default (explicit quantization: the ranges travel
inside model_int8.onnx, nothing else is needed on the board), or from model.onnx with
the entropy calibrator over the shared calibration set (`--trt-int8 calibrator`),
which also writes TensorRT's calibration cache (calib.cache) for `trtexec --calib`.
Everything here except `build_engine` is plain Python and tested without TensorRT.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

from segnet_edge.convert.context import Check, ExportContext, ExportResult
from segnet_edge.convert.options import ConvertOptions
from segnet_edge.convert.registry import FORMATS, Availability, ExportFormat, parse_trt_version

CALIBRATION_CACHE = "calib.cache"
SKIPPED = "needs TensorRT on the target"


@functools.lru_cache(maxsize=1)
def available() -> Availability:
    """TensorRT must import and make a builder, which needs a CUDA GPU."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return Availability(False, SKIPPED)
    try:
        import tensorrt as trt

        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        if builder is None:
            raise RuntimeError("no builder")
    except Exception as exc:  # noqa: BLE001 - CUDA init failures come as several types
        return Availability(False, f"{SKIPPED} (TensorRT imports but cannot build here: {str(exc)[:80]})")
    return Availability(True)


@dataclass(frozen=True)
class EngineSettings:
    """One engine's build recipe, shared by the Python builder and the trtexec command."""

    engine: str
    onnx: str  # the ONNX artifact it is built from (file name in OUT)
    precision: str  # fp16 | int8
    int8_mode: str | None  # qdq | calibrator, for int8
    workspace_mib: int
    sparsity: bool
    trt_version: str
    batch: int

    @property
    def flags(self) -> list[str]:
        """TensorRT BuilderFlag names to set."""
        flags = ["FP16"]  # int8 engines run what is not quantized in fp16 rather than fp32
        if self.precision == "int8":
            flags.append("INT8")
        if self.sparsity:
            flags.append("SPARSE_WEIGHTS")
        return flags

    @property
    def calibration_cache(self) -> str | None:
        return CALIBRATION_CACHE if self.int8_mode == "calibrator" else None

    def trtexec(self) -> str:
        """The equivalent command for the board (trtexec ships with JetPack in /usr/src/tensorrt/bin)."""
        parts = ["trtexec", f"--onnx={self.onnx}", f"--saveEngine={self.engine}"]
        parts += [f"--{flag.lower()}" for flag in self.flags if flag in ("FP16", "INT8")]
        if self.calibration_cache:
            parts.append(f"--calib={self.calibration_cache}")
        if self.sparsity:
            parts.append("--sparsity=enable")
        if parse_trt_version(self.trt_version) >= (8, 4):
            parts.append(f"--memPoolSize=workspace:{self.workspace_mib}")
        else:
            parts.append(f"--workspace={self.workspace_mib}")
        return " ".join(parts)

    def to_json(self) -> dict:
        return {"engine": self.engine, "onnx": self.onnx, "flags": self.flags, "int8_mode": self.int8_mode,
                "workspace_mib": self.workspace_mib, "calibration_cache": self.calibration_cache,
                "trtexec": self.trtexec()}


def source_format(fmt: ExportFormat, options: ConvertOptions) -> ExportFormat:
    """The ONNX artifact an engine is built from: the QDQ graph for int8 unless the calibrator is asked for."""
    if fmt.is_int8 and options.trt_int8 == "qdq":
        return FORMATS["onnx-int8"]
    return FORMATS["onnx-fp32"]


def engine_settings(fmt: ExportFormat, options: ConvertOptions) -> EngineSettings:
    return EngineSettings(
        engine=fmt.artifact,
        onnx=source_format(fmt, options).artifact,
        precision=fmt.precision,
        int8_mode=options.trt_int8 if fmt.is_int8 else None,
        workspace_mib=options.workspace_mib,
        sparsity=options.sparsity,
        trt_version=options.trt_version,
        batch=options.batch,
    )


def build_engine(onnx_path: Path, settings: EngineSettings, calibrator=None) -> bytes:
    """Parse, configure, build, serialize: the only function here that needs TensorRT and a GPU."""
    import tensorrt as trt

    from segnet_edge.convert.context import ConversionError

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if hasattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH"):  # the default (and deprecated) in 10.x
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ConversionError(f"{onnx_path.name}: TensorRT cannot parse it: {errors[:300]}")
    config = builder.create_builder_config()
    workspace = settings.workspace_mib << 20
    if hasattr(config, "set_memory_pool_limit"):
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    else:  # TensorRT < 8.4
        config.max_workspace_size = workspace
    for flag in settings.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if calibrator is not None:
        config.int8_calibrator = calibrator
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ConversionError(f"TensorRT could not build {settings.engine}; see the TensorRT log above")
    return bytes(serialized)


def export(ctx: ExportContext, fmt: ExportFormat) -> ExportResult:
    from segnet_edge.atomic import write_bytes_atomic, write_text_atomic
    from segnet_edge.device.artifact_metadata import sidecar_path, sidecar_text

    settings = engine_settings(fmt, ctx.options)
    source = ctx.results[source_format(fmt, ctx.options).name]
    metadata = replace(source.metadata, format=fmt.name)
    path = ctx.staging / fmt.artifact
    sidecar = sidecar_path(path)
    write_text_atomic(sidecar, sidecar_text(metadata))  # unsealed: the engine may be built on the board
    result = ExportResult(metadata=metadata, unpool_mode=source.unpool_mode, command=settings.trtexec(),
                          extra_files=[sidecar])
    parser_check = next((c for c in source.checks if c.name.endswith("parser")), None)
    if parser_check is not None and not parser_check.passed:
        result.skipped = f"{settings.onnx} fails the {parser_check.name} check"
        return result
    availability = available()
    if not availability.ok:
        result.skipped = availability.reason
        if settings.calibration_cache:
            result.notes.append(f"{CALIBRATION_CACHE} must come from a machine with TensorRT "
                                "(this command there); the default --trt-int8 qdq needs no cache")
        return result
    calibrator = None
    if settings.int8_mode == "calibrator":
        from segnet_edge.calibration.tensorrt import make_entropy_calibrator

        cache = ctx.staging / CALIBRATION_CACHE
        calibrator = make_entropy_calibrator(ctx.need_calibration(fmt.name), ctx.metadata.normalization, cache,
                                             ctx.options.batch)
        result.extra_files.append(cache)
    try:
        engine = build_engine(source.path, settings, calibrator)
    finally:
        if calibrator is not None:
            calibrator.free()
    write_bytes_atomic(path, engine)
    write_text_atomic(sidecar, sidecar_text(metadata, engine))  # sealed over the engine and itself
    result.path = path
    result.checks.append(Check("engine built", True, " ".join(settings.flags)))
    return result
