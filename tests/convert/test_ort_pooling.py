"""ONNX Runtime's MaxPool(Indices) + MaxUnpool graph: the same function as the portable graph, at odd sizes too."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from segnet_edge.convert.onnx import export_graph, quantize_qdq
from segnet_edge.convert.ort_pooling import (
    PoolingRewriteError,
    export_ort_graph,
    pool_quantized_values,
    pooling_pairs,
    rewrite_pooling,
    with_stand_in_pooling,
)
from segnet_edge.convert.trt_support import check_onnx_for_tensorrt
from tests.convert.conftest import CLASSES, VAL_FRAMES, facts

# 5 pooling levels, and odd at the 1st and 4th (ceil mode: 36 -> 18 -> 9 -> 5 -> 3 -> 2; 52 -> ... -> 7 -> 4 -> 2)
ODD_SIZE = (36, 52)


def run_onnx(proto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"image": x[i:i + 1]})[0] for i in range(len(x))])


@pytest.fixture(scope="module")
def random_segnet():
    """A SegNet with BN statistics spread so channels and windows differ, at an odd size (ceil-mode pooling)."""
    from segnet_edge._tf import keras
    from segnet_edge.models import build_segnet

    keras.utils.set_random_seed(3)
    model = build_segnet(ODD_SIZE, len(CLASSES), alpha=0.125, unpool_mode="select")
    rng = np.random.default_rng(3)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma * rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape), mean, var])
    return model


def test_same_function_as_the_portable_graph_at_an_odd_size(random_segnet):
    x = np.random.default_rng(0).normal(0, 60, (3, *ODD_SIZE, 3)).astype(np.float32)
    ort_graph = export_ort_graph(random_segnet, ODD_SIZE, 1, 17)
    onnx.checker.check_model(ort_graph)
    ops = Counter(n.op_type for n in ort_graph.graph.node)
    assert ops["MaxUnpool"] == 5 and ops["MaxPool"] == 5 and ops["Pad"] >= 1
    assert not {"ArgMax", "SpaceToDepth", "DepthToSpace", "Resize"} & set(ops)
    assert all(len(n.output) == 2 for n in ort_graph.graph.node if n.op_type == "MaxPool")
    last = ort_graph.graph.node[-1]  # the softmax runs over the contiguous last axis, after the NHWC transpose
    assert last.op_type == "Softmax" and last.attribute[0].i == 3 and last.output[0] == "probabilities"
    # the portable graph (SpaceToDepth + ArgMax, Equal/Where + DepthToSpace) runs in the same runtime:
    # identical kernels for everything else, so any misplaced index would change the probabilities
    portable = run_onnx(export_graph(random_segnet, ODD_SIZE, 1, 17), x)
    native = run_onnx(ort_graph, x)
    np.testing.assert_allclose(native, portable, atol=1e-5)
    keras_out = random_segnet.predict(x, verbose=0)
    assert np.mean(native.argmax(-1) == keras_out.argmax(-1)) > 0.999
    # and plain pooling (what the graph is made from) is a different function: the test can tell
    plain = run_onnx(export_graph(with_stand_in_pooling(random_segnet), ODD_SIZE, 1, 17), x)
    assert np.abs(plain - portable).max() > 0.05


def test_int8_pooling_on_the_uint8_codes_changes_nothing(random_segnet, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader

    class Frames(CalibrationDataReader):
        def __init__(self):
            rng = np.random.default_rng(5)
            self.frames = iter([{"image": rng.normal(0, 60, (1, *ODD_SIZE, 3)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.frames, None)

    onnx.save(export_ort_graph(random_segnet, ODD_SIZE, 1, 17), str(tmp_path / "float.onnx"))
    quantize_qdq(tmp_path / "float.onnx", tmp_path / "qdq.onnx", Frames(), "minmax", 99.99, for_tensorrt=False)
    qdq = onnx.load(str(tmp_path / "qdq.onnx"))
    x = np.random.default_rng(6).normal(0, 60, (2, *ODD_SIZE, 3)).astype(np.float32)
    before = run_onnx(qdq, x)
    assert pool_quantized_values(qdq) == 5
    producers = {name: n.op_type for n in qdq.graph.node for name in n.output}
    assert {producers[n.input[0]] for n in qdq.graph.node if n.op_type == "MaxPool"} <= {"QuantizeLinear", "Pad"}
    np.testing.assert_array_equal(run_onnx(qdq, x), before)  # a max and its position are the same on the codes
    assert pool_quantized_values(qdq) == 0  # nothing left to rewire


def test_tensorrt_would_refuse_it(random_segnet):
    problems = check_onnx_for_tensorrt(export_ort_graph(random_segnet, ODD_SIZE, 1, 17), "10.0")
    assert any("MaxUnpool" in p for p in problems) and any("MaxPool with indices" in p for p in problems)


def test_mismatched_levels_are_refused(random_segnet):
    """Pairing each unpool with the wrong encoder level cannot slip through: the shapes disagree."""
    pools, pairs = pooling_pairs(random_segnet)
    assert [p.pool for p in pairs] == list(reversed(pools))
    stand_in = export_graph(with_stand_in_pooling(random_segnet), ODD_SIZE, 1, 17)
    shuffled = [type(p)(pools[i], p.unpool) for i, p in enumerate(pairs)]  # encoder order: every level wrong
    with pytest.raises(PoolingRewriteError, match="reads"):
        rewrite_pooling(stand_in, pools, shuffled)
    with pytest.raises(PoolingRewriteError, match="expected 5 MaxPool"):
        rewrite_pooling(export_graph(random_segnet, ODD_SIZE, 1, 17), pools, pairs)  # not a stand-in graph


def test_segnet_basic_converts_too():
    from segnet_edge._tf import keras
    from segnet_edge.models import ModelConfig, build_model

    keras.utils.set_random_seed(4)
    model = build_model(ModelConfig(arch="segnet-basic", input_size=(30, 44), num_classes=3, alpha=0.25))
    x = np.random.default_rng(1).normal(0, 60, (2, 30, 44, 3)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(export_ort_graph(model, (30, 44), 1, 17), x),
                               run_onnx(export_graph(model, (30, 44), 1, 17), x), atol=1e-5)


def test_converted_artifacts_pass_and_say_they_are_for_onnx_runtime(converted, trained_model):
    from segnet_edge.device.artifact_metadata import read_artifact_metadata

    for name, file in (("ort-fp32", "model_ort.onnx"), ("ort-int8", "model_ort_int8.onnx")):
        artifact = converted.artifact(name)
        assert artifact["status"] == "pass" and artifact["file"] == file
        assert "MaxUnpool" in artifact["ops"] and "ArgMax" not in artifact["ops"]
        assert any("ONNX Runtime only" in note for note in artifact["notes"])
        assert read_artifact_metadata(converted.out / file).unpool_mode == "maxunpool"
    assert converted.artifact("ort-fp32")["parity"]["agreement"] >= 0.999
    qdq = onnx.load(str(converted.out / "model_ort_int8.onnx"))
    inits = {init.name: init for init in qdq.graph.initializer}
    activations = [inits[n.input[2]] for n in qdq.graph.node if n.op_type == "QuantizeLinear"]  # weights: int8
    assert activations and all(zp.data_type == onnx.TensorProto.UINT8 for zp in activations)
    notes = " ".join(converted.artifact("ort-int8")["notes"])
    levels = facts(trained_model).pooling_levels
    assert "asymmetric uint8" in notes and f"{levels} index-recording MaxPool(s) read the uint8 tensor directly" in notes
    assert converted.artifact("ort-int8")["parity"]["frames"] == VAL_FRAMES
