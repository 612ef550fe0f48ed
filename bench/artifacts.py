"""Models, frames and artifacts for the benchmark, all made with the project's own code.

- The full-size SegNet: random weights (the timing of dense kernels does not depend on the values)
  or a trained model (`--full-model`), exported by `segnet_edge.convert.convert_model`, the same
  call `segnet-edge convert` makes, so the rows are the artifacts users get.
- The demo model: `--demo-model`, else `demo_out/train/best.h5` when `make demo` has run, else
  one trained here by make demo's own recipe; held-out synthetic test frames score it.
- Pooling-design variants (bench/variants.py) are exported with the exporters' own functions
  (convert_keras, export_graph, quantize_qdq) and the same metadata embedding, because their
  bench-only layers are not meant to be saved as model files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CAMVID_SAMPLE = REPO.parent / "shared" / "data" / "camvid-sample"
DEMO_MODEL = REPO / "demo_out" / "train" / "best.h5"
DEMO_DATA = REPO / "demo_out" / "data"

#: Formats on the table, in its order (TensorRT needs a GPU: not on this CPU's table).
FORMATS = ("tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32", "onnx-int8", "ort-fp32", "ort-int8")
LABELS = {"tflite-fp32": "TFLite fp32", "tflite-fp16": "TFLite fp16", "tflite-int8": "TFLite int8",
          "onnx-fp32": "ORT fp32", "onnx-int8": "ORT QDQ int8",
          "ort-fp32": "ORT fp32, MaxUnpool", "ort-int8": "ORT QDQ uint8, MaxUnpool"}
#: Formats that are another graph for the same runtime and precision (the pooling goal takes the best).
SAME_RUNTIME = {"ort-fp32": "onnx-fp32", "ort-int8": "onnx-int8"}


def runtime_and_precision(name: str) -> tuple[str, str]:
    """(device backend, precision) of export format `name`, from convert's format table (whose runtime
    is the backend its artifact's suffix picks): what a row loads and what it is labelled."""
    from segnet_edge.convert.registry import FORMATS as EXPORT_FORMATS

    fmt = EXPORT_FORMATS[name]
    return fmt.runtime, fmt.precision


@dataclass
class Frames:
    """Model inputs (float32, preprocessed by device/preprocess) and labels when known."""

    inputs: np.ndarray
    labels: np.ndarray | None
    source: str


def load_frames(data: str | Path, split: str, size: tuple[int, int], count: int | None = None) -> Frames:
    """The first `count` frames of a labelled dataset split, preprocessed as the board does."""
    from segnet_edge.data.layout import find_samples, load_class_info
    from segnet_edge.data.loader import load_samples
    from segnet_edge.device.metadata import Normalization
    from segnet_edge.device.preprocess import normalize

    samples = find_samples(data, split)[:count]
    info = load_class_info(data)
    loaded = load_samples(samples, size, info)
    inputs = normalize(loaded.images, Normalization()).astype(np.float32)
    return Frames(inputs, loaded.labels, f"{data} ({split} split, {len(samples)} frames)")


def calibration_set(data: str | Path, size: tuple[int, int], count: int, seed: int = 0):
    """The shared representative set (train split), no held-out frames: the bench brings its own."""
    from segnet_edge.calibration.representative import CalibrationRecipe, build_calibration_set

    recipe = CalibrationRecipe(source=str(data), size=tuple(size), count=count, seed=seed, split="train",
                               holdout=0).resolved()
    return build_calibration_set(recipe, allow_fewer=True)


def full_size_model(work: Path, size: tuple[int, int], alpha: float, seed: int = 0) -> Path:
    """A random-weight SegNet (CamVid's 11 classes) saved as a segnet-edge model file."""
    from segnet_edge._tf import keras
    from segnet_edge.device.metadata import CAMVID_CLASSES, CAMVID_IGNORE_LABEL, CAMVID_PALETTE, ModelMetadata
    from segnet_edge.model_io import save_model
    from segnet_edge.models import ModelConfig, build_model

    path = work / f"segnet_{size[0]}x{size[1]}_a{alpha:g}_random.h5"
    if path.is_file():
        return path
    keras.utils.set_random_seed(seed)
    model = build_model(ModelConfig("segnet", tuple(size), len(CAMVID_CLASSES), alpha))
    metadata = ModelMetadata(CAMVID_CLASSES, CAMVID_PALETTE, tuple(size), ignore_label=CAMVID_IGNORE_LABEL,
                             alpha=alpha)
    return save_model(model, path, metadata)


def demo_model(work: Path, given: str | None, data: str | None, log: Callable[[str], None],
               epochs: int = 30) -> tuple[Path, Path]:
    """(model file, dataset with a test split): given, `make demo`'s, or trained here by make demo's own recipe
    (`segnet_edge.demo.train_demo_model`), so the demo rows always describe a model of the same kind."""
    if given:
        if not data:
            raise SystemExit("bench: --demo-model needs --demo-data (a dataset with a test split)")
        return Path(given), Path(data)
    if DEMO_MODEL.is_file() and (DEMO_DATA / "test.txt").is_file() and not data:
        log(f"demo model: {DEMO_MODEL} (from make demo)")
        return DEMO_MODEL, DEMO_DATA
    if data:
        raise SystemExit("bench: --demo-data needs --demo-model (or run make demo first)")
    from segnet_edge.demo import train_demo_model

    started = time.perf_counter()
    log(f"no make demo model: training one by make demo's recipe ({epochs} epochs) in {work / 'demo'}")
    model, dataset = train_demo_model(work / "demo", epochs=str(epochs))
    log(f"demo model trained in {time.perf_counter() - started:.0f} s")
    return model, dataset


def convert_all(model: Path, out: Path, calib, log: Callable[[str], None], formats=FORMATS,
                output: str | None = None):
    """`segnet-edge convert` for the table's formats (parity on one frame: the bench scores them itself)."""
    from segnet_edge.convert import ConvertOptions, convert_model

    options = ConvertOptions(parity_frames=1)
    if output is not None:
        options = replace(options, output=output)
    return convert_model(model, out, list(formats), calib, options=options, log=log)


def export_variant(model, metadata, design: str, out: Path, calib, formats=FORMATS,
                   log: Callable[[str], None] = print) -> dict[str, Path]:
    """Artifacts of a pooling-design variant, made by the exporters' functions, metadata embedded."""
    import onnx

    from segnet_edge.calibration.onnxruntime import CalibrationReader
    from segnet_edge.calibration.tflite import representative_dataset
    from segnet_edge.convert.onnx import INPUT_NAME, export_graph, quantize_qdq
    from segnet_edge.convert.options import ConvertOptions
    from segnet_edge.convert.registry import FORMATS as EXPORT_FORMATS
    from segnet_edge.convert.tflite import convert_keras, convert_keras_int8, inspect
    from segnet_edge.device.artifact_metadata import embed_tflite_metadata, sealed_onnx_bytes

    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    defaults = ConvertOptions()  # the same activation ranges `segnet-edge convert` picks
    float_onnx = out / f"{design}_float.onnx"
    for name in formats:
        fmt = EXPORT_FORMATS[name]
        family, precision = fmt.family, fmt.precision
        path = out / f"{design}_{name}{Path(fmt.artifact).suffix}"
        started = time.perf_counter()
        meta = replace(metadata, format=name, unpool_mode=design)
        if family == "tflite":
            representative = representative_dataset(calib, metadata.normalization) if precision == "int8" else None
            if representative is not None:
                flatbuffer, _ = convert_keras_int8(model, representative, "int8", defaults.tflite_calib,
                                                   defaults.tflite_calib_percentile)
            else:
                flatbuffer = convert_keras(model, precision, representative, "int8")
            if precision == "int8":
                graph = inspect(flatbuffer)
                meta = replace(meta, input_quantization=graph.input_quantization,
                               output_quantization=graph.output_quantization)
            path.write_bytes(embed_tflite_metadata(flatbuffer, meta))
        else:
            if not float_onnx.is_file():
                onnx.save(export_graph(model, tuple(metadata.input_size), 1, 17), str(float_onnx))
            if precision == "int8":  # "ort": the same plain graph, with ONNX Runtime's uint8 activations
                quantize_qdq(float_onnx, path, CalibrationReader(calib, metadata.normalization, INPUT_NAME, 1),
                             defaults.onnx_calib, defaults.onnx_calib_percentile, for_tensorrt=family == "onnx")
                proto = onnx.load(str(path))
            else:
                proto = onnx.load(str(float_onnx))
            path.write_bytes(sealed_onnx_bytes(proto, meta))
        paths[name] = path
        log(f"  {design} {name}: {time.perf_counter() - started:.0f} s")
    return paths
