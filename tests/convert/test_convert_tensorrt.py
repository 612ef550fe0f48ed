"""TensorRT engine settings and trtexec commands (everything but the build call, which needs the board)."""

from __future__ import annotations

import importlib.util

import pytest

from segnet_edge.convert.options import ConvertOptions
from segnet_edge.convert.registry import FORMATS
from segnet_edge.convert.tensorrt import available, engine_settings, source_format


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_unavailable_without_tensorrt():
    availability = available()
    assert not availability.ok and availability.reason == "needs TensorRT on the target"


def test_fp16_engine_from_model_onnx():
    settings = engine_settings(FORMATS["trt-fp16"], ConvertOptions())
    assert settings.flags == ["FP16"] and settings.onnx == "model.onnx"
    assert settings.trtexec() == ("trtexec --onnx=model.onnx --saveEngine=model_fp16.engine --fp16 "
                                  "--memPoolSize=workspace:1024")


def test_int8_engine_from_the_qdq_graph_with_sparsity():
    settings = engine_settings(FORMATS["trt-int8"], ConvertOptions(sparsity=True, workspace_mib=512))
    assert source_format(FORMATS["trt-int8"], ConvertOptions()).name == "onnx-int8"
    assert settings.flags == ["FP16", "INT8", "SPARSE_WEIGHTS"]
    assert settings.calibration_cache is None
    assert settings.trtexec() == ("trtexec --onnx=model_int8.onnx --saveEngine=model_int8.engine --fp16 --int8 "
                                  "--sparsity=enable --memPoolSize=workspace:512")


def test_int8_engine_with_the_calibrator_on_jetpack_4_6():
    options = ConvertOptions(trt_int8="calibrator", trt_version="8.2")
    settings = engine_settings(FORMATS["trt-int8"], options)
    assert settings.onnx == "model.onnx" and settings.int8_mode == "calibrator"
    assert settings.trtexec() == ("trtexec --onnx=model.onnx --saveEngine=model_int8.engine --fp16 --int8 "
                                  "--calib=calib.cache --workspace=1024")
    assert settings.to_json()["calibration_cache"] == "calib.cache"
