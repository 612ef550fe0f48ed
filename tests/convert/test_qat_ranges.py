"""The learnt-range graph rewrites of convert/qat_ranges.py on small hand-built ONNX graphs, run in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from segnet_edge.convert.qat_ranges import SIGNED_ZERO_POINT, LearntRanges, quantize_where_trained

STEP = 0.5


def _parameters(step: float, zero_point: int) -> list[dict]:
    """One TensorQuantOverrides entry, as range_overrides writes it."""
    return [{"scale": np.array(step, np.float32), "zero_point": np.array(zero_point, np.uint8)}]


def _graph(reader: str, downstream_step: float):
    """image (NHWC) -> READER -> Q/DQ at `downstream_step` -> output, as ONNX Runtime's quantizer leaves a
    QAT model whose input quantizer sits before tf2onnx's transpose."""
    from onnx import TensorProto, helper, numpy_helper

    if reader == "Transpose":
        first = helper.make_node("Transpose", ["image"], ["moved"], perm=[0, 3, 1, 2])
        shape = [1, 3, 4, 5]
    else:  # an op that computes with the values, as SegNet-Basic's LRN does
        first = helper.make_node("Sigmoid", ["image"], ["moved"])
        shape = [1, 4, 5, 3]
    inits = [numpy_helper.from_array(np.array(downstream_step, np.float32), "s"),
             numpy_helper.from_array(np.array(SIGNED_ZERO_POINT, np.uint8), "z")]
    nodes = [first, helper.make_node("QuantizeLinear", ["moved", "s", "z"], ["codes"]),
             helper.make_node("DequantizeLinear", ["codes", "s", "z"], ["output"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4, 5, 3])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _learnt(reader_keeps_range: bool, downstream_step: float) -> LearntRanges:
    learnt = LearntRanges()
    learnt.overrides["image"] = _parameters(STEP, SIGNED_ZERO_POINT)
    learnt.learnt.add("image")
    if reader_keeps_range:
        learnt.overrides["moved"] = (learnt.overrides["image"] if downstream_step == STEP
                                     else _parameters(downstream_step, SIGNED_ZERO_POINT))
    return learnt


def _run(model, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


@pytest.mark.parametrize("reader, downstream_step, pairs_added", [
    ("Transpose", STEP, 0),  # rounded after the transpose on the same grid: a pair on the input rounds twice
    ("Transpose", STEP / 2, 1),  # a finer grid downstream does not round as the QAT model did
    ("Sigmoid", STEP, 1),  # an op that computes reads the unrounded input: it must be rounded first
])
def test_a_learnt_tensor_is_rounded_exactly_once(reader, downstream_step, pairs_added):
    model = _graph(reader, downstream_step)
    learnt = _learnt(reader == "Transpose", downstream_step)
    x = np.random.default_rng(0).normal(0, 3, (1, 4, 5, 3)).astype(np.float32)
    assert quantize_where_trained(model, learnt) == pairs_added
    assert sum(n.op_type == "QuantizeLinear" for n in model.graph.node) == 1 + pairs_added
    # Either way the graph computes what the QAT model did: the input on its learnt grid first.
    rounded = (np.clip(np.round(x / STEP) + SIGNED_ZERO_POINT, 0, 255) - SIGNED_ZERO_POINT) * STEP
    expected = _run(_graph(reader, downstream_step), rounded)
    np.testing.assert_array_equal(_run(model, x), expected)
