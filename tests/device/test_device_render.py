"""Postprocessing and rendering on real arrays."""

from __future__ import annotations

import numpy as np
import pytest

from segnet_edge.device.errors import UsageError
from segnet_edge.device.metadata import ModelMetadata, TensorQuantization
from segnet_edge.device.postprocess import argmax_classes, postprocess
from segnet_edge.device.render import Renderer, colorize, palette_lut

META = ModelMetadata(class_names=("sky", "road", "car"), palette=((255, 0, 0), (0, 255, 0), (0, 0, 255)),
                     input_size=(8, 12))


@pytest.mark.parametrize("dtype", [np.float32, np.int8, np.uint8])
def test_argmax_matches_numpy(dtype):
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 100, size=(17, 23, 5)).astype(dtype)
    np.testing.assert_array_equal(argmax_classes(scores), scores.argmax(-1))


def test_postprocess_int8_output():
    q = TensorQuantization("int8", 1 / 256, -128)
    meta = ModelMetadata(class_names=META.class_names, palette=META.palette, input_size=(8, 12),
                         output_quantization=q)
    probs = np.zeros((1, 8, 12, 3), np.float32)
    probs[..., 2] = 1.0
    probs[0, :4, :, 2], probs[0, :4, :, 0] = 0.25, 0.75  # top half class 0 with p=0.75
    raw = np.clip(np.round(probs / q.scale) + q.zero_point, -128, 127).astype(np.int8)
    seg = postprocess(raw, meta, (32, 48))
    assert seg.labels.shape == (8, 12) and seg.frame_labels.shape == (32, 48)
    assert (seg.labels[:4] == 0).all() and (seg.labels[4:] == 2).all()
    np.testing.assert_allclose(seg.class_fractions, [0.5, 0.0, 0.5])
    assert seg.confidence == pytest.approx((0.75 + 127 / 128) / 2, abs=0.01)


def test_render_overlays_palette_colours():
    lut = palette_lut(META.palette)
    labels = np.array([[0, 1], [2, 7]], np.uint8)
    colours = colorize(labels, lut)
    assert colours[0, 0].tolist() == [0, 0, 255]  # RGB red -> BGR
    assert colours[0, 1].tolist() == [0, 255, 0] and colours[1, 1].tolist() == [0, 0, 0]
    frame = np.full((120, 160, 3), 100, np.uint8)
    labels = np.ones((120, 160), np.uint8)
    plain = Renderer(META, alpha=0.5, legend=False, fps_text=False).render(frame, labels)
    assert plain[60, 80].tolist() == [50, 178, 50] and frame[0, 0].tolist() == [100, 100, 100]
    annotated = Renderer(META, alpha=0.5).render(frame, labels, fps=12.3)
    assert annotated.shape == frame.shape and not np.array_equal(annotated, plain)


def test_render_reuses_its_buffers_from_frame_to_frame():
    renderer = Renderer(META, alpha=0.5, legend=False, fps_text=False)
    frame = np.full((120, 160, 3), 100, np.uint8)
    first = renderer.render(frame, np.ones((120, 160), np.uint8))
    expected = first.copy()
    second = renderer.render(frame, np.zeros((120, 160), np.uint8))
    assert second is first  # the same overlay buffer: no allocation per frame
    assert not np.array_equal(second, expected)  # ... holding the new frame's overlay
    assert renderer.render(frame, np.ones((120, 160), np.uint8)).tolist() == expected.tolist()
    bigger = renderer.render(np.zeros((240, 320, 3), np.uint8), np.ones((240, 320), np.uint8))
    assert bigger.shape == (240, 320, 3) and bigger is not first  # a new size gets new buffers
    with pytest.raises(UsageError, match="alpha"):
        Renderer(META, alpha=1.5)
