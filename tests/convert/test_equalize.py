"""Activation equalization: the float function must not move, the per-channel peaks must even out."""

from __future__ import annotations

import numpy as np

from tests.conftest import run_cli
from tests.convert.conftest import facts


def _frames(calib_npz):
    from segnet_edge.calibration.representative import load_calibration_set
    from segnet_edge.device.preprocess import preprocess
    from tests.convert.conftest import model_metadata

    metadata = model_metadata()
    frames = load_calibration_set(calib_npz).frames[:16]
    return np.stack([preprocess(f, metadata.input_size, metadata.normalization) for f in frames]).astype(np.float32)


def _peak_spread(model, inputs) -> list[float]:
    """Per ReLU output: loudest channel peak / median channel peak (1.0 = perfectly even)."""
    from segnet_edge._tf import keras

    relus = [layer for layer in model.layers if layer.name.endswith("_relu")]
    outputs = keras.Model(model.input, [layer.output for layer in relus]).predict(inputs, verbose=0)
    spreads = []
    for activation in outputs:
        peak = activation.reshape(-1, activation.shape[-1]).max(axis=0)
        peak = peak[peak > 0]
        spreads.append(float(peak.max() / np.median(peak)))
    return spreads


def test_equalized_model_is_the_same_function_with_even_channel_peaks(trained_model, calib_npz):
    from segnet_edge.convert.equalize import equalize_activations
    from segnet_edge.model_io import load_model

    model = load_model(trained_model)
    inputs = _frames(calib_npz)
    twin, done = equalize_activations(model, inputs)
    # every conv+BN+ReLU: SegNet's 13 encoder (pool5 -> unpool5 too) and 12 decoder; SegNet-Basic's 4 encoder
    assert done is not None and done.layers == facts(trained_model).relu_convs
    assert done.max_abs_change < 1e-4 and done.argmax_agreement == 1.0 and 1.0 < done.median_scale <= done.max_scale <= 16.0
    np.testing.assert_allclose(twin.predict(inputs, verbose=0), model.predict(inputs, verbose=0), atol=1e-4)
    before, after = _peak_spread(model, inputs), _peak_spread(twin, inputs)
    assert all(a <= b + 1e-3 for a, b in zip(after, before))
    assert np.median(after) - 1 < 0.5 * (np.median(before) - 1)  # spread 1.0 means every channel peaks alike
    first_bn = f"{facts(trained_model).first_conv}_bn"
    assert model.get_layer(first_bn).get_weights()[0] is not twin.get_layer(first_bn).get_weights()[0]


def test_convert_equalizes_by_default_and_no_equalize_turns_it_off(converted, trained_model, calib_npz, tmp_path):
    import json

    relu_convs = facts(trained_model).relu_convs
    assert converted.report["equalization"]["layers"] == relu_convs
    assert f"Activation equalization: {relu_convs} conv+BN+ReLU outputs" in (converted.out / "report.md").read_text()
    out = tmp_path / "plain"
    result = run_cli("convert", trained_model, "--calib", calib_npz, "--formats", "tflite-int8", "--no-equalize",
                     "--out", out)
    assert result.returncode in (0, 1), result.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["equalization"] is None and report["options"]["equalize"] is False
    assert "Activation equalization: off" in (out / "report.md").read_text()
