"""The TensorRT parser check on real and hand-made ONNX graphs, and the ONNX exporter's options."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from segnet_edge.convert.options import ConvertOptions
from segnet_edge.convert.registry import FORMATS, unpool_mode
from segnet_edge.convert.trt_support import TRT_8_2_OPS, TRT_8_5_OPS, check_onnx_for_tensorrt, support_for


def graph(nodes, inputs, outputs, initializers=(), opset=17):
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", opset)])
    return model


def tensor(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def test_support_tables_follow_the_versions():
    assert "OneHot" not in TRT_8_2_OPS and "OneHot" in TRT_8_5_OPS
    assert support_for("8.2").max_opset == 13 and support_for("8.4").version == (8, 2)
    assert support_for("8.5.2").version == (8, 5) and support_for("9.1").version == (8, 6)
    assert support_for("10.3").max_opset == 20
    assert "release/8.2-GA" in support_for("8.2").source


def test_trt_version_picks_opset_and_unpool_form():
    assert ConvertOptions(trt_version="8.2").onnx_opset == 13
    assert ConvertOptions().onnx_opset == 17 and ConvertOptions(opset=16).onnx_opset == 16
    assert unpool_mode(FORMATS["onnx-fp32"], "8.2") == "select"
    assert unpool_mode(FORMATS["onnx-fp32"], "8.6") == "onehot"
    assert unpool_mode(FORMATS["onnx-int8"], "10.0") == "select"
    assert unpool_mode(FORMATS["tflite-int8"], "8.6") == "gather"


def test_real_graphs_against_older_tensorrt(converted):
    """JetPack 4.6's TensorRT 8.2: the OneHot graph is refused, the QDQ select graph only for its opset."""
    fp32 = check_onnx_for_tensorrt(onnx.load(str(converted.out / "model.onnx")), "8.2")
    assert any(p.startswith("OneHot") for p in fp32)
    assert any("opset 17 is newer than TensorRT 8.2" in p for p in fp32)
    int8 = check_onnx_for_tensorrt(onnx.load(str(converted.out / "model_int8.onnx")), "8.2")
    assert len(int8) == 1 and "opset 17" in int8[0]


def test_max_unpool_and_pool_indices_are_refused():
    nodes = [helper.make_node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("MaxUnpool", ["y", "idx"], ["z"], kernel_shape=[2, 2], strides=[2, 2], name="unpool")]
    model = graph(nodes, [tensor("x", [1, 1, 4, 4])], [tensor("z", [1, 1, 4, 4])])
    problems = check_onnx_for_tensorrt(model, "10.0")
    assert any("pool: MaxPool with indices" in p for p in problems)
    assert any("unpool: MaxUnpool" in p for p in problems)


def test_dynamic_shapes_are_refused():
    model = graph([helper.make_node("Relu", ["x"], ["y"])], [tensor("x", ["N", 3, 8, 8])], [tensor("y", ["N", 3, 8, 8])])
    problems = check_onnx_for_tensorrt(model, "8.6")
    assert any("input 'x' has a dynamic shape" in p for p in problems)
    static = graph([helper.make_node("Relu", ["x"], ["y"])], [tensor("x", [1, 3, 8, 8])], [tensor("y", [1, 3, 8, 8])])
    assert check_onnx_for_tensorrt(static, "8.6") == []


def test_asymmetric_and_int32_dequantize_are_refused():
    weights = numpy_helper.from_array(np.ones(4, np.int32), "bias_q")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "scale")
    zero = numpy_helper.from_array(np.array(3, np.int8), "zero")
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"], name="dq"),
             helper.make_node("DequantizeLinear", ["bias_q", "scale"], ["bias"], name="dq_bias"),
             helper.make_node("Add", ["xd", "bias"], ["y"], name="add")]
    model = graph(nodes, [tensor("x", [1, 4])], [tensor("y", [1, 4])], [weights, scale, zero])
    problems = check_onnx_for_tensorrt(model, "8.6")
    assert any(p.startswith("q and 1 more: non-zero zero point") for p in problems)
    assert any(p.startswith("dq_bias: dequantizes int32") for p in problems)


def test_custom_domain_op_is_unsupported():
    node = helper.make_node("Plugin", ["x"], ["y"], domain="com.example", name="p")
    model = graph([node], [tensor("x", [1])], [tensor("y", [1])])
    model.opset_import.append(helper.make_opsetid("com.example", 1))
    assert any(p.startswith("com.example.Plugin") for p in check_onnx_for_tensorrt(model, "8.6"))


@pytest.fixture(scope="module")
def batch2_jetpack46(tmp_path_factory, trained_model, calib_npz):
    """The API path: model.onnx for TensorRT 8.2 with a static batch of 2."""
    from segnet_edge.convert import convert_model

    out = tmp_path_factory.mktemp("batch2") / "out"
    report = convert_model(trained_model, out, ["onnx-fp32"], calib_npz,
                           options=ConvertOptions(batch=2, trt_version="8.2", parity_frames=5))
    return out, report


def test_batch_and_trt_8_2_export(batch2_jetpack46):
    out, report = batch2_jetpack46
    assert report.passed, report.failures()
    assert [a.format for a in report.artifacts] == ["onnx-fp32"]
    model = onnx.load(str(out / "model.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 32, 48, 3]
    assert next(o.version for o in model.opset_import if o.domain == "") == 13
    assert "OneHot" not in {n.op_type for n in model.graph.node}
    assert check_onnx_for_tensorrt(model, "8.2") == []
    artifact = report.artifact("onnx-fp32")
    assert artifact.unpool_mode == "select"
    assert artifact.parity.frames == 5 and artifact.parity.agreement >= 0.999  # an odd count pads the last batch
    assert report.to_json()["options"]["onnx_opset"] == 13
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "report.json", "report.md"]


def test_calib_data_at_another_input_size_is_built_once_and_reused(tmp_path, trained_model, scene_dataset):
    """--calib-data builds OUT/calib.npz at the export size (--input-size), and the next run reuses it."""
    from segnet_edge.calibration import load_calibration_set
    from segnet_edge.convert import convert_model
    from segnet_edge.device.artifact_metadata import read_artifact_metadata

    out = tmp_path / "out"
    options = ConvertOptions(calib_count=16, input_size=(64, 96), parity_frames=4)
    logged: list[str] = []
    report = convert_model(trained_model, out, ["onnx-int8"], calib_data=scene_dataset, options=options,
                           log=logged.append)
    calib = load_calibration_set(out / "calib.npz")
    assert len(calib) == 16 and calib.size == (64, 96) and calib.recipe.kind == "dataset"
    assert report.calibration["frames"] == 16 and report.parity_frames["held_out"]
    model = onnx.load(str(out / "model_int8.onnx"))
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 64, 96, 3]
    assert read_artifact_metadata(out / "model_int8.onnx").input_size == (64, 96)
    assert report.artifact("onnx-int8").parity.frames == 4
    assert any(m.startswith(f"built {out / 'calib.npz'}: 16 frames") for m in logged)
    logged.clear()
    convert_model(trained_model, out, ["onnx-int8"], calib_data=scene_dataset, options=options, log=logged.append)
    assert any(m.startswith(f"reusing {out / 'calib.npz'}") for m in logged)
