"""SegNet and SegNet-Basic exactly as SEGNET_REFERENCE.md describes them."""

from __future__ import annotations

import numpy as np
import pytest

from segnet_edge._tf import keras, tf
from segnet_edge.device.errors import UsageError
from segnet_edge.layers import LocalResponseNormalization, MaxPoolingWithArgmax2D, MaxUnpooling2D
from segnet_edge.models import ModelConfig, build_model, count_macs, with_unpool_mode


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


@pytest.fixture(scope="module")
def full_segnet():
    return build_model(ModelConfig("segnet", (360, 480), 11))


def test_full_segnet_matches_the_authors_definition(full_segnet):
    model = full_segnet
    assert abs(model.count_params() - 29.46e6) / 29.46e6 < 0.02
    convs = _layers(model, keras.layers.Conv2D)
    assert len(convs) == 26  # 13 VGG16 encoder convs + 13 decoder convs
    assert [c.kernel_size for c in convs] == [(3, 3)] * 26
    assert len(_layers(model, keras.layers.BatchNormalization)) == 25
    assert len(_layers(model, keras.layers.ReLU)) == 25  # 13 encoder + 12 decoder
    last = convs[-1]
    assert last.name == "block1_conv1_D" and last.filters == 11
    assert model.layers[-1].name == "probabilities"  # softmax straight after the class-score conv
    assert model.layers[-2] is last
    encoder_widths = [c.filters for c in convs[:13]]
    assert encoder_widths == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    decoder_widths = [c.filters for c in convs[13:]]
    assert decoder_widths == [512, 512, 512, 512, 512, 256, 256, 256, 128, 128, 64, 64, 11]
    assert 100e9 < count_macs(model) < 110e9


def test_camvid_size_passes_the_five_levels_in_ceil_mode(full_segnet):
    pools = _layers(full_segnet, MaxPoolingWithArgmax2D)
    assert [tuple(p.output[0].shape[1:3]) for p in pools] == [(180, 240), (90, 120), (45, 60), (23, 30), (12, 15)]
    unpools = _layers(full_segnet, MaxUnpooling2D)
    assert [tuple(u.output.shape[1:3]) for u in unpools] == [(23, 30), (45, 60), (90, 120), (180, 240), (360, 480)]
    assert tuple(full_segnet.output.shape) == (None, 360, 480, 11)


def test_segnet_basic_matches_the_authors_definition():
    model = build_model(ModelConfig("segnet-basic", (360, 480), 11))
    assert abs(model.count_params() - 1.42e6) / 1.42e6 < 0.02
    assert isinstance(model.layers[1], LocalResponseNormalization)
    convs = _layers(model, keras.layers.Conv2D)
    assert [c.kernel_size for c in convs] == [(7, 7)] * 8 + [(1, 1)]
    assert all(c.filters == 64 for c in convs[:8]) and convs[-1].filters == 11
    assert len(_layers(model, keras.layers.BatchNormalization)) == 8
    relus = _layers(model, keras.layers.ReLU)
    assert len(relus) == 4 and all(not r.name.startswith("conv_decode") for r in relus)  # no ReLU in the decoder


def test_lrn_follows_caffe_which_divides_alpha_by_the_window():
    x = np.random.default_rng(0).uniform(0, 255, (1, 2, 2, 3)).astype(np.float32)
    out = LocalResponseNormalization()(x).numpy()
    # Caffe: x / (k + alpha/n * sum over the channel window of x^2) ** beta; the window covers all 3 channels
    expected = x / (1 + 1e-4 / 5 * (x**2).sum(-1, keepdims=True)) ** 0.75
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_input_lrn_moves_into_the_preprocessing_as_the_same_function(tmp_path):
    """SegNet-Basic's converted graphs start after its input LRN, which THE preprocessing then applies: the
    LRN-free model on LRN-preprocessed frames must be the model itself, on numpy and tf tensors alike."""
    from segnet_edge.device.metadata import ModelMetadata, Normalization, default_palette
    from segnet_edge.device.preprocess import normalize
    from segnet_edge.model_io import save_model, stored_input_lrn
    from segnet_edge.models import drop_input_lrn

    model = build_model(ModelConfig("segnet-basic", (32, 48), 4, alpha=0.25))
    cut, lrn = drop_input_lrn(model)
    assert lrn is not None and (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 1.0)
    assert not _layers(cut, LocalResponseNormalization) and len(cut.layers) == len(model.layers) - 1
    frames = np.random.default_rng(0).integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    with_lrn = Normalization(lrn=lrn)
    moved = normalize(frames, with_lrn)
    np.testing.assert_allclose(normalize(tf.constant(frames), with_lrn).numpy(), moved, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(moved, LocalResponseNormalization()(normalize(frames, Normalization())).numpy(),
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(cut.predict(moved, verbose=0), model.predict(normalize(frames, Normalization()),
                                                                            verbose=0), atol=1e-4)
    assert drop_input_lrn(cut) == (cut, None)  # SegNet, or a graph already cut: nothing to move
    # the setting travels in the metadata and is read back; a file's LRN is found without TensorFlow
    meta = ModelMetadata(("a", "b", "c", "d"), default_palette(4), (32, 48), normalization=with_lrn)
    assert ModelMetadata.loads(meta.dumps()).normalization == with_lrn
    assert stored_input_lrn(save_model(model, tmp_path / "basic.h5", meta)) == lrn
    assert stored_input_lrn(save_model(cut, tmp_path / "cut.h5", meta)) is None


@pytest.mark.parametrize("size", [3, 5])
def test_the_preprocessing_lrn_is_keras_lrn_for_any_window(size):
    from segnet_edge.device.metadata import InputLRN
    from segnet_edge.device.preprocess import local_response_norm

    x = np.random.default_rng(2).uniform(-130, 130, (2, 6, 7, 3)).astype(np.float32)
    expected = LocalResponseNormalization(size=size)(x).numpy()
    lrn = InputLRN(size=size)
    np.testing.assert_allclose(local_response_norm(x, lrn), expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(local_response_norm(tf.constant(x), lrn).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_metadata_from_a_newer_schema_is_refused():
    from segnet_edge.device.metadata import SCHEMA_VERSION, ModelMetadata, default_palette

    data = ModelMetadata(("a", "b"), default_palette(2), (8, 8)).to_json()
    data["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="upgrade segnet-edge"):
        ModelMetadata.from_json(data)


@pytest.mark.parametrize("arch", ["segnet", "segnet-basic"])
def test_alpha_any_size_and_any_class_count(arch):
    small = build_model(ModelConfig(arch, (50, 70), 5, alpha=0.25))
    assert tuple(small.output.shape) == (None, 50, 70, 5)
    x = np.random.default_rng(1).standard_normal((2, 50, 70, 3)).astype(np.float32)
    probabilities = small(x).numpy()
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    wide = build_model(ModelConfig(arch, (50, 70), 5, alpha=0.5))
    assert wide.count_params() > 2.5 * small.count_params()


def test_too_small_inputs_and_bad_configs_are_usage_errors():
    with pytest.raises(UsageError, match="at least 32x32"):
        build_model(ModelConfig("segnet", (16, 64), 3))
    with pytest.raises(UsageError, match="at least 16x16"):
        build_model(ModelConfig("segnet-basic", (8, 8), 3))
    with pytest.raises(UsageError, match="unknown architecture"):
        build_model(ModelConfig("unet", (64, 64), 3))
    with pytest.raises(UsageError, match="at least 2 classes"):
        build_model(ModelConfig("segnet", (64, 64), 1))


def test_switching_the_unpool_formulation_keeps_predictions():
    model = build_model(ModelConfig("segnet", (37, 45), 4, alpha=0.125))
    x = np.random.default_rng(2).standard_normal((1, 37, 45, 3)).astype(np.float32)
    other = with_unpool_mode(model, "select")
    assert {layer.mode for layer in _layers(other, MaxUnpooling2D)} == {"select"}
    np.testing.assert_allclose(other(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-6)
