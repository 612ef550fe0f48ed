"""Damaged artifacts, models and calibration sets: refused in one line, never a signal or a traceback.

Also the two gates of segnet_edge.device.artifact_check on their own: the static
TFLite walk (backends/tflite_file.py) must reject the damage classes that crashed LiteRT when measured, and
the child-process probe must turn a real SIGSEGV (and a hang) into one line while
the caller carries on.
"""

from __future__ import annotations

import struct

import pytest
from rel_util import record

from segnet_edge.device.artifact_check import check_artifact, probe_in_child
from segnet_edge.device.backends.tflite_file import MODEL, OPERATOR, SUBGRAPH, TENSOR, FlatBuffer
from segnet_edge.device.errors import ModelFileError
from tools.reliability.fuzz import FuzzTarget, fuzz


def test_damaged_artifacts_are_refused_in_one_line_and_never_kill_the_board_process(artifacts, plan, tmp_path):
    """Truncations, bit flips and index rewrites of fp32/int8 TFLite and ONNX through run_camera."""
    tally = fuzz([FuzzTarget(artifacts / "model_int8.tflite", plan.fuzz_tflite_int8, "model_int8.tflite"),
                  FuzzTarget(artifacts / "model_fp32.tflite", plan.fuzz_tflite_fp32, "model_fp32.tflite"),
                  FuzzTarget(artifacts / "model.onnx", plan.fuzz_onnx, "model.onnx")], plan.seed, tmp_path)
    assert tally.fuzz_cases == plan.fuzz_tflite_int8 + plan.fuzz_tflite_fp32 + plan.fuzz_onnx
    assert tally.refused > 0  # the damage reached the checks, it was not all in the weights
    assert tally.undetected == 0 and tally.accepted == 0  # the payload digest: no damaged artifact runs
    record(tally, "fuzz artifacts")


def test_damaged_keras_models_and_calibration_sets_are_refused_in_one_line(rel_model, rel_calib, plan, tmp_path):
    tally = fuzz([FuzzTarget(rel_model, plan.fuzz_h5, "best.h5"),
                  FuzzTarget(rel_calib, plan.fuzz_npz, "calib.npz")], plan.seed, tmp_path)
    assert tally.fuzz_cases == plan.fuzz_h5 + plan.fuzz_npz and tally.refused > 0
    assert tally.undetected == 0  # every damaged .h5 refused (its digest); a calib.npz's arrays carry CRC-32s
    record(tally, "fuzz models and calibration sets")


def test_the_child_probe_turns_a_segfault_and_a_hang_into_one_line(artifacts, tmp_path):
    """A real SIGSEGV in a real child process (ctypes reads address 0): the caller gets one line and lives."""
    model = tmp_path / "model_int8.tflite"  # a fresh path: a clean probe of the shared file is remembered
    model.write_bytes((artifacts / "model_int8.tflite").read_bytes())
    with pytest.raises(ModelFileError) as crash:
        probe_in_child(model, "litert", "import ctypes; ctypes.string_at(0)", [])
    assert "SIGSEGV" in str(crash.value) and "\n" not in str(crash.value) and str(model) in str(crash.value)
    with pytest.raises(ModelFileError, match="did not finish loading it within 1 s"):
        probe_in_child(model, "litert", "import time; time.sleep(30)", [], timeout_s=1)
    with pytest.raises(ModelFileError, match=r"cannot load or run it \(ValueError: bad tensor\)"):
        probe_in_child(model, "litert", "raise ValueError('bad tensor')", [])
    probe_in_child(model, "litert", "pass", [])  # a clean child: no error, and remembered


def _tflite_positions(data: bytes):
    walker = FlatBuffer(data)
    model = walker.root()
    subgraph = walker.tables(model, MODEL["subgraphs"], "subgraphs")[0]
    return walker, model, subgraph


def test_the_static_walk_rejects_what_crashed_litert(artifacts, tmp_path):
    """Out-of-range operator indices and a constant tensor pointing at a buffer of the wrong size."""
    data = (artifacts / "model_int8.tflite").read_bytes()
    walker, model, subgraph = _tflite_positions(data)
    tensors = walker.tables(subgraph, SUBGRAPH["tensors"], "tensors")
    operator = walker.tables(subgraph, SUBGRAPH["operators"], "operators")[0]

    bad_index = bytearray(data)
    start, _ = walker.vector(operator, OPERATOR["inputs"], 4, "inputs")
    struct.pack_into("<i", bad_index, start, len(tensors) + 7)
    buffers = walker.tables(model, MODEL["buffers"], "buffers")
    sizes = [walker.vector(b, 0, 1, "data")[1] for b in buffers]
    constant = next(t for t in tensors if sizes[walker.scalar(t, TENSOR["buffer"], "<I", "b")] > 0)
    own = walker.scalar(constant, TENSOR["buffer"], "<I", "b")
    other = next(i for i, size in enumerate(sizes) if size and size != sizes[own])
    bad_buffer = bytearray(data)
    struct.pack_into("<I", bad_buffer, walker.field(constant, TENSOR["buffer"], "b"), other)

    cases = {"operator index": (bytes(bad_index), "operator 0 inputs name tensor"),
             "buffer size": (bytes(bad_buffer), "but its buffer holds"),
             "truncated": (data[: len(data) // 2], "past the end of the file"),
             "foreign": (data[:4] + b"PK\x03\x04" + data[8:], "no TFL3 identifier"),
             "empty": (b"", "too small")}
    for name, (content, needle) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.tflite"
        path.write_bytes(content)
        with pytest.raises(ModelFileError) as info:
            check_artifact(path)
        assert needle in str(info.value) and "\n" not in str(info.value), (name, str(info.value))
    assert check_artifact(artifacts / "model_int8.tflite").input_quantization.dtype == "int8"


def test_onnx_graphs_that_do_not_check_are_refused(artifacts, tmp_path):
    import onnx

    model = onnx.load(str(artifacts / "model.onnx"))
    model.graph.node[0].input[0] = "no_such_tensor"
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(ModelFileError, match=r"damaged artifact \(ONNX: "):
        check_artifact(broken)
    assert check_artifact(artifacts / "model.onnx").num_classes == 4
