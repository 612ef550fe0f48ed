"""The Python API an application embeds: open a converted model, get a frame's class map as numpy."""

from __future__ import annotations

import numpy as np


def test_open_model_segments_a_frame_of_any_size_without_tensorflow(artifacts):
    import subprocess
    import sys

    code = f"""
import sys
import numpy as np
from segnet_edge.device import open_model
frame = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
with open_model({str(artifacts / "model_int8.tflite")!r}, threads=1) as model:
    seg = model.segment(frame)
    h, w = model.metadata.input_size
    assert seg.labels.shape == (h, w) and seg.labels.dtype == np.uint8, seg.labels.shape
    assert seg.frame_labels.shape == (50, 70)
    assert seg.labels.max() < model.metadata.num_classes
    assert abs(seg.class_fractions.sum() - 1) < 1e-6
    probabilities = model.run(np.zeros((2, h, w, 3), np.float32))
    assert probabilities.shape == (2, h, w, model.metadata.num_classes) and probabilities.dtype == np.float32
assert "tensorflow" not in sys.modules
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_run_and_segment_agree_on_the_class_map(artifacts):
    from segnet_edge.device import open_model
    from segnet_edge.device.preprocess import preprocess

    frame = np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    with open_model(artifacts / "model_fp32.tflite") as model:
        m = model.metadata
        probabilities = model.run(preprocess(frame, m.input_size, m.normalization)[None])
        np.testing.assert_array_equal(model.segment(frame).labels, probabilities[0].argmax(-1))
