"""Backends over real runtimes: the registry, the shared checks and timing, agreement between runtimes."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from segnet_edge.device.artifact_metadata import sidecar_path, sidecar_text
from segnet_edge.device.backends import tensorrt as trt_backend
from segnet_edge.device.backends.base import (
    BackendOptions,
    artifact_suffixes,
    available_backends,
    backend_class,
    backend_names,
    damaged,
    file_format,
    is_artifact,
    load_backend,
    payload_files,
)
from segnet_edge.device.backends.onnxruntime import choose_providers
from segnet_edge.device.errors import DataError, ModelFileError, UsageError
from segnet_edge.device.metadata import ModelMetadata
from segnet_edge.device.preprocess import preprocess, quantize


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(60, 80, 3), dtype=np.uint8)


def _input(backend, seed: int = 0) -> np.ndarray:
    meta = backend.metadata
    return quantize(preprocess(_frame(seed), meta.input_size, meta.normalization), meta.input_quantization)[None]


def test_registry_picks_backend_by_extension_and_override(tmp_path):
    names = available_backends()
    assert {"litert", "onnxruntime", "tensorrt"} <= set(names)
    assert backend_class("a/model.tflite").name == "litert"
    assert backend_class("model.ONNX").name == "onnxruntime"
    assert backend_class("model.engine").name == "tensorrt"
    assert backend_class("model.tflite", "onnxruntime").name == "onnxruntime"
    with pytest.raises(ModelFileError, match="no backend for '.pt'"):
        backend_class("model.pt")
    with pytest.raises(UsageError, match="unknown backend 'openvino'"):
        backend_class("model.onnx", "openvino")
    with pytest.raises(ModelFileError, match="no such model file"):
        load_backend(tmp_path / "missing.tflite")


def test_registry_helpers_read_the_backend_classes(artifacts, tmp_path):
    assert backend_names() == tuple(available_backends()) and "tensorrt" in backend_names()
    # the built-in order whatever order the modules were imported in (this file imports tensorrt first)
    assert artifact_suffixes() == (".tflite", ".onnx", ".engine", ".plan", ".trt")
    assert [file_format(p) for p in ("m.tflite", "m.ONNX", "m.plan", "m.trt", "m.h5")] == [
        "tflite", "onnx", "engine", "engine", None]
    assert is_artifact("a/m.engine") and not is_artifact("a/m.engine.json") and not is_artifact("m.keras")
    assert payload_files("m.trt") == [Path("m.trt"), Path("m.trt.json")]
    assert payload_files("m.onnx") == [Path("m.onnx")]
    assert damaged(artifacts / "model_int8.tflite") is None and damaged(artifacts / "model.onnx") is None
    short = tmp_path / "short.plan"
    short.write_bytes(b"12345")
    assert "5 bytes is too small for a .plan file" in damaged(short)
    foreign = tmp_path / "foreign.tflite"
    foreign.write_bytes(b"\0" * 100)
    assert "no TFL3 identifier" in damaged(foreign)


def test_tflite_and_onnx_agree_and_inference_is_timed(artifacts):
    fp32 = load_backend(artifacts / "model_fp32.tflite", options=BackendOptions(threads=1))
    onnx = load_backend(artifacts / "model.onnx", options=BackendOptions(threads=1))
    with fp32, onnx:
        assert fp32.is_active and onnx.is_active
        x = _input(fp32)
        a, b = fp32.infer(x), onnx.infer(x)
        assert a.shape == b.shape == (1, 32, 48, 4)
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-4)  # softmax probabilities
        np.testing.assert_allclose(a, b, atol=2e-3)
        assert (a.argmax(-1) == b.argmax(-1)).mean() > 0.98
        assert fp32.inference_time > 0 and onnx.inference_time > 0
        assert fp32.get_input_metadata().dtype == "float32"
        assert "ai-edge-litert" in fp32.describe() and "threads=1" in fp32.describe()
        assert "CPUExecutionProvider" in onnx.describe()
    assert not fp32.is_active and not onnx.is_active


def test_int8_tflite_takes_int8_and_gives_probabilities(artifacts):
    """The int8 path end to end: quantized input in, int8 out, dequantized with the metadata's params
    to per-pixel distributions (a random net's int8 argmax need not match fp32's, its sums must be 1)."""
    from segnet_edge.device.preprocess import dequantize

    int8 = load_backend(artifacts / "model_int8.tflite")
    assert int8.metadata.input_quantization.dtype == "int8"
    with int8:
        x8 = _input(int8, seed=3)
        assert x8.dtype == np.int8
        out8 = int8.infer(x8)
        assert out8.dtype == np.int8 and out8.shape == (1, 32, 48, 4)
        probs = dequantize(out8, int8.metadata.output_quantization)
        assert probs.min() >= 0 and np.abs(probs.sum(-1) - 1).mean() < 0.02


def test_infer_checks_input_and_state(artifacts):
    backend = load_backend(artifacts / "model_fp32.tflite")
    x = _input(backend)
    with pytest.raises(RuntimeError, match="not active"):
        backend.infer(x)
    with backend:
        with pytest.raises(DataError, match=r"does not match the model's \(1, 32, 48, 3\) float32"):
            backend.infer(x.astype(np.float64))
        with pytest.raises(DataError, match="does not match"):
            backend.infer(x[:, :16])
        with pytest.raises(RuntimeError, match="already active"):
            backend.activate()


def test_metadata_that_disagrees_with_the_model_is_refused(artifacts, tmp_path):
    """An artifact whose embedded metadata lies about its input is caught before any frame runs."""
    import onnx

    from segnet_edge.device.artifact_metadata import embed_onnx_metadata

    model = onnx.load(str(artifacts / "model.onnx"))
    meta = load_backend(artifacts / "model.onnx").metadata
    bad = tmp_path / "bad.onnx"
    onnx.save(embed_onnx_metadata(model, replace(meta, input_size=(64, 64))), str(bad))
    with pytest.raises(ModelFileError, match="disagrees with its metadata"):
        load_backend(bad).activate()


def test_corrupt_artifacts_fail_with_one_line(artifacts, tmp_path):
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes((artifacts / "model_fp32.tflite").read_bytes()[:4096])
    with pytest.raises(ModelFileError) as info:
        load_backend(truncated).activate()
    assert "\n" not in str(info.value)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a protobuf at all" * 10)
    with pytest.raises(ModelFileError):
        load_backend(garbage).activate()
    with pytest.raises(ModelFileError, match="carries no segnet-edge metadata"):
        load_backend(artifacts / "no_metadata.tflite")


def test_onnxruntime_provider_choice():
    assert choose_providers(["CPUExecutionProvider", "CUDAExecutionProvider"], None) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["CPUExecutionProvider"], ("CPUExecutionProvider",)) == ["CPUExecutionProvider"]
    with pytest.raises(UsageError, match="TensorrtExecutionProvider"):
        choose_providers(["CPUExecutionProvider"], ("TensorrtExecutionProvider",))


# --- TensorRT: everything but the GPU call ---------------------------------------------------


def _engine_with_sidecar(artifacts, tmp_path) -> tuple:
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"\x00" * 64)  # not a real engine: only a GPU with TensorRT could build one
    meta = ModelMetadata.loads(json.dumps(load_backend(artifacts / "model_fp32.tflite").metadata.to_json()))
    sidecar_path(engine).write_text(sidecar_text(meta, engine.read_bytes()))  # sealed, as convert writes it
    return engine, meta


def test_tensorrt_reads_sidecar_metadata(artifacts, tmp_path):
    engine, meta = _engine_with_sidecar(artifacts, tmp_path)
    backend = load_backend(engine)
    assert backend.name == "tensorrt" and replace(backend.metadata, payload_sha256=None) == replace(
        meta, payload_sha256=None)
    assert backend.expected_input.shape == (1, 32, 48, 3)
    sidecar_path(engine).unlink()
    with pytest.raises(ModelFileError, match="carries no segnet-edge metadata"):
        load_backend(engine)


def test_tensorrt_shape_resolution():
    assert trt_backend.resolve_shape((-1, 32, 48, 3), (1, 32, 48, 3)) == (1, 32, 48, 3)
    assert trt_backend.resolve_shape((1, 32, 48, 3), (1, 32, 48, 3)) == (1, 32, 48, 3)
    with pytest.raises(ModelFileError, match="rebuild the engine"):
        trt_backend.resolve_shape((1, 64, 64, 3), (1, 32, 48, 3))


def _has_tensorrt() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


@pytest.mark.skipif(_has_tensorrt(), reason="tensorrt is installed, so the missing-runtime message cannot occur")
def test_tensorrt_missing_runtime_is_one_clear_line(artifacts, tmp_path):
    engine, _ = _engine_with_sidecar(artifacts, tmp_path)
    with pytest.raises(UsageError) as info:
        load_backend(engine).activate()
    message = str(info.value)
    assert "needs the TensorRT Python package" in message and "\n" not in message


@pytest.mark.skipif(not _has_tensorrt(), reason="hardware call: needs tensorrt, CUDA Python bindings and an NVIDIA GPU")
def test_tensorrt_engine_matches_onnxruntime(artifacts, tmp_path):
    """Build an engine from the ONNX artifact on this GPU, then run it through the backend."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((artifacts / "model.onnx").read_bytes()), parser.get_error(0)
    serialized = builder.build_serialized_network(network, builder.create_builder_config())
    engine = tmp_path / "model.engine"
    engine.write_bytes(bytes(serialized))
    meta = load_backend(artifacts / "model.onnx").metadata
    sidecar_path(engine).write_text(sidecar_text(meta, engine.read_bytes()))
    with load_backend(engine) as backend, load_backend(artifacts / "model.onnx") as reference:
        x = _input(reference)
        np.testing.assert_allclose(backend.infer(x), reference.infer(x), atol=5e-3)
        assert backend.inference_time > 0
