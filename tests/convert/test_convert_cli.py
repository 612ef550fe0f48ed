"""`segnet-edge convert` end to end on a fitted 32x48 SegNet: artifacts, metadata, report, targets.

The numbers are recomputed here from the artifacts where that is cheap, so a report
that claimed more than the artifacts deliver would fail these tests.
"""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import numpy as np
import pytest

from segnet_edge.convert.options import Targets
from tests.convert.conftest import CLASSES, INPUT_SIZE, VAL_FRAMES, scenes

BUILT = ("tflite-fp32", "tflite-fp16", "tflite-int8", "onnx-fp32", "onnx-int8", "ort-fp32", "ort-int8")
ENGINES = ("trt-fp16", "trt-int8")


def tensorrt_here() -> bool:
    from segnet_edge.convert.tensorrt import available

    return available().ok


def test_convert_writes_every_artifact_and_passes(converted):
    assert converted.returncode == 0, converted.stderr[-3000:]
    assert converted.report["passed"] is True, converted.report["failures"]
    names = {a["format"] for a in converted.report["artifacts"]}
    assert names == set(BUILT) | set(ENGINES)
    for name in BUILT:
        artifact = converted.artifact(name)
        assert artifact["status"] == "pass", artifact
        path = converted.out / artifact["file"]
        assert path.is_file() and path.stat().st_size == artifact["size_bytes"]
        assert artifact["ops"], name
        assert artifact["seconds"] > 0
        assert stat.S_IMODE(path.stat().st_mode) & 0o044, "artifacts must be readable by the board's user"
    # no staging folder or temporary file is left next to OUT or inside it
    assert not [p for p in converted.out.parent.iterdir() if p.name.startswith(".")]
    assert not [p for p in converted.out.iterdir() if p.name.startswith(".")]


@pytest.mark.skipif("tensorrt_here()", reason="TensorRT is installed: engines are built, not skipped")
def test_engines_are_skipped_with_the_trtexec_command(converted):
    for name, onnx_file, flags in (("trt-fp16", "model.onnx", "--fp16"), ("trt-int8", "model_int8.onnx", "--int8")):
        artifact = converted.artifact(name)
        assert artifact["status"] == "skipped"
        assert artifact["skipped"].startswith("needs TensorRT on the target")
        command = artifact["command"]
        assert command.startswith(f"trtexec --onnx={onnx_file} --saveEngine=model_{name[4:]}.engine")
        assert flags in command and "--memPoolSize=workspace:1024" in command
        assert f"{name:<12} skipped: needs TensorRT on the target" in converted.stdout
        assert command in converted.stdout
        # the engine's metadata waits beside where trtexec will write it
        sidecar = json.loads((converted.out / f"model_{name[4:]}.engine.json").read_text())
        assert sidecar["format"] == name and sidecar["class_names"] == list(CLASSES)
        assert sidecar["payload_sha256"] is None  # no engine to seal yet: one built by trtexec loads with a warning


def test_parity_meets_the_targets(converted):
    report = converted.report
    assert report["parity_frames"]["frames"] == VAL_FRAMES and report["parity_frames"]["labelled"]
    for name in BUILT:
        parity = converted.artifact(name)["parity"]
        assert parity["frames"] == VAL_FRAMES
        if "int8" in name:
            assert parity["confident_agreement"] >= 0.985, (name, parity)
            assert abs(parity["miou_delta_points"]) <= 1.0, (name, parity)
        elif "fp16" in name:
            assert parity["confident_agreement"] >= 0.995, (name, parity)
        else:
            assert parity["agreement"] >= 0.999, (name, parity)
        assert 0 <= parity["mean_abs_diff"] <= parity["max_abs_diff"] <= 1
        assert parity["reference_miou"] > 0.85, "the fixture model should be fitted, or agreement means little"
        # near ties flip under any rounding: the confident pixels agree at least as well as all of them
        assert parity["confident_agreement"] >= parity["agreement"] - 1e-9, (name, parity)
        assert 0 < parity["edge_share"] < 1 and parity["edge_radius"] == 1, (name, parity)
        assert 0 <= parity["off_edge_agreement"] <= 1, (name, parity)
    sensitivity = report["sensitivity"]
    assert sensitivity["noise_grey_levels"] == 0.5 and 0.9 <= sensitivity["agreement"] <= 1.0
    assert 0.0 <= sensitivity["near_tie_share"] < 0.5
    fp32 = converted.artifact("tflite-fp32")
    assert fp32["parity"]["max_abs_diff"] < 1e-3  # same float graph, same numbers
    int8 = converted.artifact("tflite-int8")
    size_checked = any(c["name"] == "size vs tflite-fp32" and c["passed"] for c in int8["checks"])
    if fp32["size_bytes"] >= Targets().size_ratio_min_bytes:  # kernels outweigh the graph's fixed overhead
        assert int8["size_bytes"] <= 0.27 * fp32["size_bytes"] and size_checked
    else:
        assert not [c for c in int8["checks"] if c["name"].startswith("size")]


def test_artifacts_carry_metadata_with_quantization(converted, trained_model):
    from ai_edge_litert.interpreter import Interpreter

    from segnet_edge.device.artifact_check import check_artifact
    from segnet_edge.device.artifact_metadata import read_artifact_metadata
    from segnet_edge.model_io import read_metadata

    keras_digest = read_metadata(trained_model).payload_sha256
    source_sha256 = hashlib.sha256(Path(trained_model).read_bytes()).hexdigest()
    for name in BUILT:
        meta = read_artifact_metadata(converted.out / converted.artifact(name)["file"])
        assert meta.format == name
        assert meta.source_sha256 == source_sha256  # which trained file this artifact came from
        # sealed: its own digest, which the board's check verifies (not the Keras file's, which it read)
        assert meta.payload_sha256 not in (None, keras_digest) and keras_digest is not None
        assert check_artifact(converted.out / converted.artifact(name)["file"]) == meta
        assert meta.class_names == CLASSES and meta.input_size == INPUT_SIZE
        assert meta.unpool_mode == converted.artifact(name)["unpool_mode"]
    int8 = converted.out / "model_int8.tflite"
    meta = read_artifact_metadata(int8)
    interpreter = Interpreter(model_path=str(int8))
    for detail, quant in ((interpreter.get_input_details()[0], meta.input_quantization),
                          (interpreter.get_output_details()[0], meta.output_quantization)):
        assert np.dtype(detail["dtype"]).name == quant.dtype == "int8"
        assert detail["quantization"] == pytest.approx((quant.scale, quant.zero_point))
    # the unpool formulation each target gets: one_hot for float TFLite, an identity-row gather for int8
    assert read_artifact_metadata(converted.out / "model_fp32.tflite").unpool_mode == "onehot"
    assert meta.unpool_mode == "gather"
    assert read_artifact_metadata(converted.out / "model_int8.onnx").input_quantization.dtype == "float32"


def test_int8_tflite_is_full_integer_with_builtin_ops_only(converted):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_path=str(converted.out / "model_int8.tflite"),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert "CONV_2D" in ops and ops & {"SELECT_V2", "GATHER"}  # the int8 unpooling forms
    assert not [op for op in ops if op.startswith("Flex") or op in ("CUSTOM", "QUANTIZE", "DEQUANTIZE")]
    floats = [t["name"] for t in interpreter.get_tensor_details() if np.dtype(t["dtype"]).kind == "f"]
    assert floats == []
    assert sorted(ops) == converted.artifact("tflite-int8")["ops"]


def test_onnx_graphs_are_static_opset_17_and_parse_in_tensorrt(converted):
    import onnx

    from segnet_edge.convert.trt_support import check_onnx_for_tensorrt

    for name, file in (("onnx-fp32", "model.onnx"), ("onnx-int8", "model_int8.onnx")):
        model = onnx.load(str(converted.out / file))
        assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
        dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        assert dims == [1, *INPUT_SIZE, 3]
        assert check_onnx_for_tensorrt(model, "8.6") == []
        assert any(c["name"] == "TensorRT 8.6 parser" and c["passed"] for c in converted.artifact(name)["checks"])
    qdq = onnx.load(str(converted.out / "model_int8.onnx"))
    kinds = {n.op_type for n in qdq.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= kinds and "OneHot" not in kinds
    assert "OneHot" in {n.op_type for n in onnx.load(str(converted.out / "model.onnx")).graph.node}


def test_int8_onnx_parity_recomputed_independently(converted, trained_model):
    """Keras vs ONNX Runtime directly (not through the report's code path) on the same val frames."""
    import onnxruntime as ort

    from segnet_edge.device.artifact_metadata import read_artifact_metadata
    from segnet_edge.device.preprocess import normalize
    from segnet_edge.metrics import argmax_agreement
    from segnet_edge.model_io import load_model, read_metadata

    frames, _ = scenes(VAL_FRAMES, seed=2)
    # each side preprocessed as its own metadata says (SegNet-Basic's artifacts apply the input LRN outside)
    reference = load_model(trained_model).predict(normalize(frames, read_metadata(trained_model).normalization),
                                                  batch_size=8, verbose=0)
    path = converted.out / "model_int8.onnx"
    x = normalize(frames, read_artifact_metadata(path).normalization)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = np.concatenate([session.run(None, {"image": x[i:i + 1]})[0] for i in range(len(x))])
    agreement = argmax_agreement(reference, out)
    assert agreement >= 0.98
    assert agreement == pytest.approx(converted.artifact("onnx-int8")["parity"]["agreement"], abs=1e-6)


def test_report_markdown_and_summary(converted):
    text = (converted.out / "report.md").read_text()
    assert text.startswith("# Conversion report:")
    for name in BUILT:
        assert f"| `{converted.artifact(name)['file']}` |" in text
    assert "trtexec --onnx=model_int8.onnx" in text
    assert "overall: **PASS**" in text
    assert "Model sensitivity: ±0.5 grey-level input noise" in text and "agreement, margin ≥ 0.1" in text
    assert "percentile 99.99 activation ranges" in json.dumps(converted.artifact("onnx-int8"))
    for name in BUILT:
        assert any(line.startswith(name) and line.endswith("PASS") for line in converted.stdout.splitlines())
    assert converted.report["metadata"]["class_names"] == list(CLASSES)
    assert converted.report["calibration"]["frames"] == 32
    assert converted.report["options"]["onnx_opset"] == 17
