"""The three adapters over one real calibration set: TFLite generator, ONNX Runtime reader, TensorRT logic."""

from __future__ import annotations

import importlib.util
import struct

import numpy as np
import pytest

from segnet_edge.calibration import CalibrationRecipe, build_calibration_set
from segnet_edge.calibration.tensorrt import (
    ALGORITHM,
    CalibrationCache,
    CalibratorState,
    make_entropy_calibrator,
)
from segnet_edge.device.errors import DataError, UsageError
from segnet_edge.device.metadata import Normalization
from segnet_edge.device.preprocess import preprocess
from tests.calibration.conftest import SIZE

NORM = Normalization()


@pytest.fixture(scope="module")
def calib(camvid_sample):
    return build_calibration_set(CalibrationRecipe(source=str(camvid_sample), size=SIZE, count=10, holdout=2))


def test_tflite_representative_dataset(calib):
    from segnet_edge.calibration.tflite import representative_dataset

    generate = representative_dataset(calib, NORM)
    first, second = list(generate()), list(generate())  # the converter may iterate more than once
    assert len(first) == len(second) == 10
    assert all(len(item) == 1 and item[0].shape == (1, *SIZE, 3) and item[0].dtype == np.float32 for item in first)
    np.testing.assert_array_equal(first[4][0][0], preprocess(calib.frames[4], SIZE, NORM))
    assert len(list(representative_dataset(calib, NORM, limit=3)())) == 3


def _tiny_nhwc_graph(path) -> None:
    """Transpose + 1x1 Conv on a (2, H, W, 3) input: small enough to quantize in a second."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.1, (4, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w"], ["out"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [2, *SIZE, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4, *SIZE])], [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _scales(path) -> dict[str, float]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return {n.input[0]: float(initializers[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"}


def test_onnxruntime_reader_drives_a_real_static_quantization(calib, tmp_path):
    """quantize_static on a tiny NHWC graph: the input's scale must come from exactly these frames."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from segnet_edge.calibration.onnxruntime import CalibrationReader

    float_path, int8_path = tmp_path / "f.onnx", tmp_path / "q.onnx"
    _tiny_nhwc_graph(float_path)
    reader = CalibrationReader(calib, NORM, "image", batch=2)
    assert len(reader) == 5
    quantize_static(str(float_path), str(int8_path), reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, extra_options={"ActivationSymmetric": True})
    assert reader.batches_read >= 5
    scale = next(v for k, v in _scales(int8_path).items() if k in ("image", "nchw"))
    absmax = max(np.abs(x).max() for x in calib.inputs(NORM))
    assert absmax / 128 <= scale <= absmax / 126, (scale, absmax)
    reader.rewind()
    assert reader.get_next()["image"].shape == (2, *SIZE, 3)


def test_reader_ranges_cover_the_set_once_in_order(calib):
    from segnet_edge.calibration.onnxruntime import CalibrationReader

    whole = [b["image"] for b in iter(CalibrationReader(calib, NORM, batch=2).get_next, None)]
    reader = CalibrationReader(calib, NORM, batch=2)
    chunks = []
    for start, end in ((0, 2), (2, 4), (4, 5)):
        reader.set_range(start_index=start, end_index=end)
        chunks.append([b["image"] for b in iter(reader.get_next, None)])
    assert [len(c) for c in chunks] == [2, 2, 1]
    for got, want in zip(sum(chunks, []), whole):
        np.testing.assert_array_equal(got, want)
    reader.set_range(start_index=3, end_index=4)  # backwards: starts over and skips to batch 3
    np.testing.assert_array_equal(reader.get_next()["image"], whole[3])
    assert reader.get_next() is None


@pytest.mark.parametrize(("total", "batch_bytes", "budget", "expected"), [
    (10, 100, 250, 2),  # 2 fit, and divide 10
    (10, 100, 450, 2),  # 4 would fit but does not divide 10
    (7, 100, 650, 1),  # a prime count falls back to one batch per call
    (10, 100, 10**9, 10),  # all of it in one call
    (10, 10**10, 1, 1),  # one batch even when it alone is over budget
])
def test_calibration_chunks_fit_the_budget_and_divide_the_set(total, batch_bytes, budget, expected):
    from segnet_edge.calibration.onnxruntime import chunk_batches

    assert chunk_batches(total, batch_bytes, budget) == expected


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_quantize_qdq_calibrates_in_chunks_within_its_memory_budget(calib, tmp_path, method):
    """A budget of one batch's tensors: one collect_data call per batch, and the ranges of one whole pass."""
    from segnet_edge.calibration.onnxruntime import CalibrationReader
    from segnet_edge.convert.onnx import float_tensor_bytes, quantize_qdq

    class RangeLog(CalibrationReader):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.ranges: list[tuple[int, int]] = []

        def set_range(self, start_index: int, end_index: int) -> None:
            self.ranges.append((start_index, end_index))
            super().set_range(start_index, end_index)

    float_path = tmp_path / "f.onnx"
    _tiny_nhwc_graph(float_path)
    batch_bytes = float_tensor_bytes(float_path)
    assert batch_bytes == 4 * 2 * SIZE[0] * SIZE[1] * (3 + 4)  # the transposed input and the conv's output
    chunked, whole = RangeLog(calib, NORM, batch=2), RangeLog(calib, NORM, batch=2)
    assert quantize_qdq(float_path, tmp_path / "chunked.onnx", chunked, method, 99.99, chunk_bytes=batch_bytes) == 5
    assert quantize_qdq(float_path, tmp_path / "whole.onnx", whole, method, 99.99, chunk_bytes=5 * batch_bytes) == 1
    assert chunked.ranges == [(i, i + 1) for i in range(5)] and chunked.batches_read == 5
    assert whole.ranges == [] and whole.batches_read == 5
    got, want = _scales(tmp_path / "chunked.onnx"), _scales(tmp_path / "whole.onnx")
    assert got.keys() == want.keys() and len(got) >= 2
    for name in want:  # min/max merges exactly; histograms merge onto the first chunk's bins
        assert got[name] == pytest.approx(want[name], rel=0 if method == "minmax" else 0.02), name


def test_tensorrt_cache_format_round_trip(tmp_path):
    data = b"TRT-8601-EntropyCalibration2\nimage: 3c000000\nblock1_conv1: 3d4ccccd\n"
    cache = CalibrationCache.parse(data)
    assert cache.version == "8601" and cache.algorithm == ALGORITHM
    assert cache.scales["image"] == 2.0 ** -7
    assert cache.scales["block1_conv1"] == struct.unpack(">f", bytes.fromhex("3d4ccccd"))[0]
    assert cache.to_bytes() == data
    for bad in (b"hello\n", b"TRT-8601-EntropyCalibration2\nimage 3c000000\n", b"\xff\xfe"):
        with pytest.raises(DataError):
            CalibrationCache.parse(bad)


def test_tensorrt_calibrator_state(calib, tmp_path):
    cache_path = tmp_path / "calib.cache"
    state = CalibratorState(calib, NORM, cache_path, batch_size=4)
    assert state.batch_nbytes == 4 * SIZE[0] * SIZE[1] * 3 * 4
    batches = []
    while (batch := state.next_batch()) is not None:
        batches.append(batch)
    assert [b.shape for b in batches] == [(4, *SIZE, 3)] * 2 and state.batches_served == 2
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in batches)
    np.testing.assert_array_equal(batches[1][0], preprocess(calib.frames[4], SIZE, NORM))
    assert state.read_calibration_cache() is None
    written = CalibrationCache("TRT-8601-EntropyCalibration2", {"image": 0.5}).to_bytes()
    state.write_calibration_cache(written)
    assert cache_path.read_bytes() == written and state.read_calibration_cache() == written
    cache_path.write_bytes(b"TRT-8601-MinMaxCalibration\nimage: 3f000000\n")
    assert state.read_calibration_cache() is None, "another algorithm's ranges must not be reused"


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_entropy_calibrator_needs_tensorrt(calib, tmp_path):
    with pytest.raises(UsageError, match="needs the tensorrt package"):
        make_entropy_calibrator(calib, NORM, tmp_path / "calib.cache")
