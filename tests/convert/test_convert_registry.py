"""The one table of formats: names, groups, dependencies, modules."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from segnet_edge.convert import default_out_dir
from segnet_edge.convert.registry import FORMATS, GROUPS, resolve_formats
from segnet_edge.device.errors import UsageError
from tests.conftest import run_cli


def names(formats):
    return [f.name for f in formats]


def test_groups_lists_and_dependencies():
    assert names(resolve_formats("all")) == list(FORMATS)
    assert names(resolve_formats(["tflite"])) == ["tflite-fp32", "tflite-fp16", "tflite-int8"]
    assert names(resolve_formats(["onnx-int8,tflite-fp32"])) == ["tflite-fp32", "onnx-int8"]
    assert names(resolve_formats(["trt-fp16"])) == ["onnx-fp32", "trt-fp16"]
    assert names(resolve_formats(["trt-int8"])) == ["onnx-fp32", "onnx-int8", "trt-int8"]
    assert names(resolve_formats(["int8"])) == ["tflite-int8", "onnx-fp32", "onnx-int8", "ort-int8", "trt-int8"]
    assert names(resolve_formats(["ort"])) == ["ort-fp32", "ort-int8"]
    assert GROUPS["trt"] == GROUPS["tensorrt"]


def test_unknown_or_empty_formats_are_usage_errors():
    with pytest.raises(UsageError, match="unknown format 'coreml'"):
        resolve_formats(["tflite", "coreml"])
    with pytest.raises(UsageError, match="no format"):
        resolve_formats([","])


def test_every_format_has_a_module_a_unique_artifact_and_known_dependencies():
    assert len({f.artifact for f in FORMATS.values()}) == len(FORMATS)
    for fmt in FORMATS.values():
        module = importlib.import_module(f"segnet_edge.convert.{fmt.family}")
        assert callable(module.export) and callable(module.available)
        assert set(fmt.needs) <= set(FORMATS)
        assert fmt.precision in ("fp32", "fp16", "int8")
    assert FORMATS["tflite-int8"].size_reference == "tflite-fp32"


def test_default_out_dir_is_beside_the_model():
    assert default_out_dir("models/segnet.h5") == Path("models/segnet_export")


def test_list_formats_without_a_model():
    result = run_cli("convert", "--list-formats")
    assert result.returncode == 0, result.stderr
    for fmt in FORMATS.values():
        assert fmt.name in result.stdout and fmt.artifact in result.stdout
    assert "needs TensorRT on the target" in result.stdout or "trt-fp16" in result.stdout


def test_a_formats_runtime_is_the_backend_its_artifact_suffix_picks():
    """Parity and the bench load each artifact on `fmt.runtime`: the device backend registry's, not a copy."""
    runtimes = {name: fmt.runtime for name, fmt in FORMATS.items()}
    assert runtimes["tflite-int8"] == "litert" and runtimes["ort-int8"] == "onnxruntime"
    assert runtimes["trt-int8"] == runtimes["trt-fp16"] == "tensorrt"
    assert FORMATS["onnx-fp32"].to_json()["runtime"] == "onnxruntime"
