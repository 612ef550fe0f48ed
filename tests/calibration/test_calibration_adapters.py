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


def test_onnxruntime_reader_drives_a_real_static_quantization(calib, tmp_path):
    """quantize_static on a tiny NHWC graph: the input's scale must come from exactly these frames."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from segnet_edge.calibration.onnxruntime import CalibrationReader

    weights = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.1, (4, 3, 1, 1)).astype(np.float32), "w")
    nodes = [helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w"], ["out"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [2, *SIZE, 3])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4, *SIZE])], [weights])
    float_path, int8_path = tmp_path / "f.onnx", tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(float_path))
    reader = CalibrationReader(calib, NORM, "image", batch=2)
    assert len(reader) == 5
    quantize_static(str(float_path), str(int8_path), reader, quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, extra_options={"ActivationSymmetric": True})
    assert reader.batches_read >= 5
    model = onnx.load(str(int8_path))
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] in ("image", "nchw"))
    scale = float(initializers[q.input[1]])
    absmax = max(np.abs(x).max() for x in calib.inputs(NORM))
    assert absmax / 128 <= scale <= absmax / 126, (scale, absmax)
    reader.rewind()
    assert reader.get_next()["image"].shape == (2, *SIZE, 3)


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
