"""One way frames run through an artifact (issue #24): the Backend's steps, their compositions and their callers.

`run` and `segment` are composed from quantize_input / prepare_input -> infer -> to_scores / to_labels /
to_segmentation; here each composition is checked against the same steps spelled out with THE
preprocessing's primitives, on the real tiny artifacts, and bench/measure's worker (its own process, as
in the bench) against the board's `segment`.
"""

from __future__ import annotations

import numpy as np
import pytest

from bench.measure import RowSpec, WorkerPool
from segnet_edge.convert.parity import mean_iou
from segnet_edge.device.backends.base import BackendOptions, load_backend
from segnet_edge.device.postprocess import label_map, postprocess
from segnet_edge.device.preprocess import dequantize, preprocess, quantize
from segnet_edge.evaluate import artifact_labels

ARTIFACTS = ("model_fp32.tflite", "model_int8.tflite", "model.onnx")


def _frames(count: int = 3) -> np.ndarray:
    """uint8 BGR frames at another size than the model's 32x48, so prepare_input resizes them."""
    return np.random.default_rng(7).integers(0, 256, size=(count, 60, 80, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ARTIFACTS)
def test_run_and_segment_are_the_steps_spelled_out(artifacts, name):
    frames = _frames()
    with load_backend(artifacts / name, options=BackendOptions(threads=1)) as backend:
        m = backend.metadata
        inputs = np.stack([preprocess(f, m.input_size, m.normalization) for f in frames])
        raws = [backend.infer(quantize(x[None], m.input_quantization)) for x in inputs]
        by_hand = np.concatenate([dequantize(raw, m.output_quantization) for raw in raws])
        np.testing.assert_array_equal(backend.run(inputs), by_hand)
        for frame, x, raw in zip(frames, inputs, raws):
            prepared = backend.prepare_input(frame)
            np.testing.assert_array_equal(prepared, backend.quantize_input(x[None]))
            assert prepared.shape == backend.expected_input.shape and prepared.dtype == backend.expected_input.dtype
            stepped = backend.infer(prepared)
            np.testing.assert_array_equal(stepped, raw)
            np.testing.assert_array_equal(backend.to_scores(stepped), dequantize(raw, m.output_quantization))
            labels = backend.to_labels(stepped)
            assert labels.shape == (1, *m.input_size) and labels.dtype == np.uint8
            # argmax on the raw (possibly int8) output is the argmax of the dequantized probabilities
            np.testing.assert_array_equal(labels[0], dequantize(raw, m.output_quantization)[0].argmax(-1))
            seg, expected = backend.segment(frame), postprocess(raw, m, frame.shape[:2])
            np.testing.assert_array_equal(seg.labels, labels[0])
            np.testing.assert_array_equal(seg.class_fractions, expected.class_fractions)
            assert seg.confidence == expected.confidence and seg.frame_labels.shape == frame.shape[:2]
            assert backend.to_segmentation(stepped, frame.shape[:2]).confidence == seg.confidence
        # evaluate scores artifacts with the same steps
        np.testing.assert_array_equal(artifact_labels(backend, frames),
                                      np.stack([backend.segment(f).labels for f in frames]))
    # the steps around infer() read the metadata alone: the pipeline's threads call them without the runtime
    assert not backend.is_active
    np.testing.assert_array_equal(backend.to_labels(raws[0]), label_map(raws[0]))
    assert backend.to_segmentation(raws[0], (60, 80)).labels.shape == tuple(m.input_size)


def test_label_map_takes_scores_of_any_dtype_and_passes_label_maps_through():
    rng = np.random.default_rng(0)
    scores8 = rng.integers(-128, 128, size=(2, 5, 7, 4), dtype=np.int8)
    np.testing.assert_array_equal(label_map(scores8), scores8.astype(np.int16).argmax(-1))
    probabilities = rng.random((2, 5, 7, 4)).astype(np.float32)
    np.testing.assert_array_equal(label_map(probabilities), probabilities.argmax(-1))
    np.testing.assert_array_equal(label_map(probabilities.astype(np.float64)), probabilities.argmax(-1))
    labels = rng.integers(0, 4, size=(2, 5, 7)).astype(np.float32)  # run()'s float labels (--output labels)
    out = label_map(labels)
    assert out.dtype == np.uint8 and out.shape == (2, 5, 7)
    np.testing.assert_array_equal(out, labels)


def test_parity_scores_the_artifacts_label_map(artifacts):
    """convert's parity measures go through the same label map as the board (label maps and scores alike)."""
    with load_backend(artifacts / "model_int8.tflite") as backend:
        m = backend.metadata
        inputs = np.stack([preprocess(f, m.input_size, m.normalization) for f in _frames()])
        probabilities = backend.run(inputs)
    truth = label_map(probabilities)
    assert mean_iou(probabilities, truth, m) == pytest.approx(1.0)
    assert mean_iou(truth.astype(np.float32), truth, m) == pytest.approx(1.0)


def test_measure_worker_labels_are_the_boards(artifacts, tmp_path):
    """bench/measure's backend rows (a process each) prepare, infer and label frames as `segment` does."""
    frames = _frames()
    rows = [RowSpec(f"full/{name}", "full", name, "litert" if name.endswith(".tflite") else "onnxruntime",
                    "int8" if "int8" in name else "fp32", 1, str(artifacts / name)) for name in ARTIFACTS]
    m = load_backend(rows[0].path).metadata
    inputs = np.stack([preprocess(f, m.input_size, m.normalization) for f in frames])
    with WorkerPool(rows, inputs, tmp_path, log=lambda _: None, parallel=1) as pool:
        pool.measure(rounds=1, warmup=0)
    for spec in rows:
        result = pool.results[spec.key]
        assert result.error is None, result.error
        assert sorted(result.labels) == list(range(len(frames))) and len(result.latencies_s) == 1
        with load_backend(spec.path) as backend:
            for i, frame in enumerate(frames):
                np.testing.assert_array_equal(result.labels[i], backend.segment(frame).labels)
