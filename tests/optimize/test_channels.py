"""Channel pruning (`prune --channels`): coupled groups, exact equivalence with the zeroed model, the command,
what follows it (QAT -> int8 TFLite, 2:4) and every bad input."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from segnet_edge._tf import keras
from segnet_edge.model_io import load_model, read_metadata
from segnet_edge.models import ModelConfig, build_model, config_from_metadata, count_macs
from segnet_edge.optimize.channels import (
    CRITERIA,
    DEFAULT_CRITERION,
    apply_plan,
    channel_groups,
    plan_pruning,
    zero_removed,
)
from tests.conftest import assert_usage_error
from tests.optimize.conftest import SIZE, _ok, run_segnet_edge

#: The coupling worked out by hand (channels.py's docstring): pool i's conv with the decoder conv feeding unpool i.
SEGNET_COUPLED = {"block1_pool": ("block1_conv2", "block2_conv1_D"), "block2_pool": ("block2_conv2", "block3_conv1_D"),
                  "block3_pool": ("block3_conv3", "block4_conv1_D"), "block4_pool": ("block4_conv3", "block5_conv1_D"),
                  "block5_pool": ("block5_conv3",)}
BASIC_COUPLED = {"pool1": ("conv1", "conv_decode2"), "pool2": ("conv2", "conv_decode3"),
                 "pool3": ("conv3", "conv_decode4"), "pool4": ("conv4",)}


def _random_model(arch: str, seed: int = 0) -> keras.Model:
    """A tiny model whose every weight (BN statistics included) is random, so BN's beta and mean matter."""
    model = build_model(ModelConfig(arch, SIZE, 5, 0.125))
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.weights:
        name = w.name.split("/")[-1]
        if "moving_variance" in name:
            weights.append(rng.uniform(0.5, 2.0, w.shape))
        elif "gamma" in name:
            weights.append(rng.uniform(0.1, 1.5, w.shape))
        else:
            weights.append(rng.normal(0, 0.3 if "kernel" in name else 0.5, w.shape))
    model.set_weights([w.astype(np.float32) for w in weights])
    return model


def _scores(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The classifier's output (before softmax): the most sensitive place to compare."""
    classifier = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D][-1]
    return keras.Model(model.input, classifier.output)(x, training=False).numpy()


@pytest.mark.parametrize("arch, coupled, classifier", [("segnet", SEGNET_COUPLED, "block1_conv1_D"),
                                                       ("segnet-basic", BASIC_COUPLED, "conv_classifier")])
def test_groups_tie_each_pool_to_the_tensor_its_unpool_receives(arch, coupled, classifier):
    model = build_model(ModelConfig(arch, SIZE, 5, 0.125))
    groups = channel_groups(model)
    by_name = {g.name: g.convs for g in groups}
    assert {k: v for k, v in by_name.items() if k in coupled} == coupled
    convs = [c for g in groups for c in g.convs]
    assert len(convs) == len(set(convs)), "a conv in two groups"
    every = {layer.name for layer in model.layers if type(layer) is keras.layers.Conv2D}
    assert set(convs) == every - {classifier}, "every conv but the classifier is in exactly one group"
    assert all(len(g.convs) == 1 for g in groups if g.name not in coupled)


@pytest.mark.parametrize("arch", ["segnet", "segnet-basic"])
@pytest.mark.parametrize("criterion", CRITERIA)
def test_the_pruned_model_equals_the_original_with_removed_channels_zeroed(arch, criterion):
    model = _random_model(arch)
    x = np.random.default_rng(1).normal(0, 40, (2, *SIZE, 3)).astype(np.float32)
    plan = plan_pruning(model, 0.5, criterion)
    pruned = apply_plan(model, plan)
    zeroed = zero_removed(model, plan)
    expected, got, original = _scores(zeroed, x), _scores(pruned, x), _scores(model, x)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert np.abs(original - expected).max() > 0.1 * np.abs(expected).max(), "the zeroed channels changed nothing"
    # the right channels went: pool i's conv and unpool i's tensor keep the same ones
    for group in plan.groups:
        assert len(plan.keep[group.name]) == round(group.width / 2)
        for conv in group.convs:
            np.testing.assert_array_equal(pruned.get_layer(conv).get_weights()[0],
                                          _kept_kernel(model, plan, conv))
    assert count_macs(pruned) < 0.3 * count_macs(model)
    # build_model with the plan's widths (what convert rebuilds from metadata) is the same network
    rebuilt = build_model(ModelConfig(arch, SIZE, 5, 0.125, widths=plan.widths()))
    rebuilt.set_weights(pruned.get_weights())
    np.testing.assert_allclose(_scores(rebuilt, x), got, rtol=1e-5, atol=1e-5 * np.abs(got).max())


def _kept_kernel(model, plan, conv: str) -> np.ndarray:
    """The original kernel cut to the plan by hand: output channels of its group, input channels of its source."""
    group_of = {c: g.name for g in plan.groups for c in g.convs}
    convs = [layer for layer in model.layers if type(layer) is keras.layers.Conv2D]
    kernel = model.get_layer(conv).get_weights()[0][..., plan.keep[group_of[conv]]]
    source = _source_conv(model, conv)
    if source is not None and source in group_of:
        kernel = kernel[:, :, plan.keep[group_of[source]], :]
    assert conv in {layer.name for layer in convs}
    return kernel


def _source_conv(model, conv: str) -> str | None:
    """The conv whose channels `conv` reads: walk the values input back to a Conv2D (None: the image)."""
    layer = model.get_layer(conv)
    while True:
        inbound = layer.inbound_nodes[0].inbound_layers
        layer = inbound[0] if isinstance(inbound, list) else inbound
        if type(layer) is keras.layers.Conv2D:
            return layer.name
        if isinstance(layer, keras.layers.InputLayer):
            return None


def test_criteria_and_defaults_are_spelled_once():
    from segnet_edge.optimize.config import PruneConfig

    assert PruneConfig().criterion == DEFAULT_CRITERION


def test_old_metadata_has_no_widths_and_new_metadata_round_trips(basic_model):
    from dataclasses import replace

    from segnet_edge.device.metadata import ModelMetadata

    old = read_metadata(basic_model)
    assert old.widths is None and config_from_metadata(old).widths is None
    data = old.to_json()
    del data["widths"]  # a file written before widths existed
    assert ModelMetadata.from_json(data) == old
    new = replace(old, widths=(("conv1", 3), ("conv_decode2", 3)))
    assert ModelMetadata.loads(new.dumps()) == new
    assert config_from_metadata(new).widths == {"conv1": 3, "conv_decode2": 3}


@pytest.fixture(scope="session")
def channel_pruned(opt_dir, synth_data, segnet_model):
    """(completed process, path): SegNet with 50% of its channels pruned through the CLI, 1 fine-tuning epoch."""
    out = opt_dir / "segnet_channels.h5"
    result = _ok(run_segnet_edge("prune", segnet_model, "--data", synth_data, "--channels", "0.5", "--epochs", 1,
                                 "--batch-size", 3, "--out", out, "--quiet"))
    return result, out


def test_prune_channels_writes_a_smaller_dense_model_with_its_widths(channel_pruned, segnet_model):
    result, out = channel_pruned
    assert "MACs per frame" in result.stdout and "block1_pool" in result.stdout
    original, pruned = load_model(segnet_model), load_model(out)
    metadata = read_metadata(out)
    assert dict(metadata.widths)["block1_conv2"] == dict(metadata.widths)["block2_conv1_D"] == 4  # 8 -> 4
    assert pruned.count_params() < 0.3 * original.count_params()
    assert count_macs(pruned) < 0.3 * count_macs(original)
    assert all(np.count_nonzero(layer.kernel.numpy()) == layer.kernel.shape.num_elements()
               for layer in pruned.layers if type(layer) is keras.layers.Conv2D), "dense: no zeroed weights"
    probabilities = pruned(np.zeros((1, *SIZE, 3), np.float32)).numpy()
    assert probabilities.shape == (1, *SIZE, metadata.num_classes)
    rebuilt = build_model(config_from_metadata(metadata))  # what convert / float_twin rebuild
    rebuilt.set_weights(pruned.get_weights())
    report = json.loads(out.with_name("segnet_channels.prune.json").read_text())
    assert report["kind"] == "channels" and report["mac_ratio"] < 0.3
    assert report["config"]["criterion"] == DEFAULT_CRITERION
    assert report["size_after"]["raw"] < report["size_before"]["raw"]


def test_a_channel_pruned_model_takes_qat_and_converts_to_int8_tflite(channel_pruned, opt_dir):
    """QAT-wrapped as `quantize --qat` wraps it (every layer), saved, then `convert`'s own path to int8 TFLite."""
    from dataclasses import replace

    from ai_edge_litert.interpreter import Interpreter

    from segnet_edge.convert import convert_model
    from segnet_edge.model_io import save_model
    from segnet_edge.models import with_unpool_mode
    from segnet_edge.optimize.quantize import make_qat_model, quantization_layout

    _, pruned = channel_pruned
    metadata = replace(read_metadata(pruned), unpool_mode="select")
    qat_model = make_qat_model(with_unpool_mode(load_model(pruned), "select"), symmetric=True)
    assert all(layer.config for layer in quantization_layout(qat_model)), "a layer was left float"
    qat = save_model(qat_model, opt_dir / "segnet_channels_qat.h5", metadata)
    export = convert_model(qat, opt_dir / "channels_export", ["tflite-int8"], None)
    path = opt_dir / "channels_export" / next(a.file for a in export.artifacts if a.file)
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    assert inp["dtype"] == np.int8
    interpreter.set_tensor(inp["index"], np.zeros(inp["shape"], np.int8))
    interpreter.invoke()
    assert interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).shape[:3] == (1, *SIZE)


def test_2_4_pruning_can_follow_on_every_conv(channel_pruned):
    """Groups keep a multiple of 4 channels, so after --channels only the layers 2:4 always skips stay dense."""
    from segnet_edge.optimize.prune import kept_dense

    _, pruned = channel_pruned
    assert set(kept_dense(load_model(pruned), m_by_n=(2, 4))) == {"block1_conv1", "block1_conv1_D"}


def test_kept_counts_round_to_the_multiple():
    from segnet_edge.optimize.channels import kept_count

    assert kept_count(64, 0.3) == 45 and kept_count(64, 0.3, 4) == 44 and kept_count(64, 0.3, 8) == 48
    assert kept_count(8, 0.5, 4) == 4 and kept_count(8, 0.7, 4) == 4  # never below one multiple
    assert kept_count(8, 0.95, 4) == 0  # an emptied group stays an error whatever the multiple
    assert kept_count(6, 0.05, 8) == 6  # never above the width


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "half"])
def test_channels_ratio_outside_zero_one(tmp_path, basic_model, synth_data, value):
    out = tmp_path / "o.h5"
    assert_usage_error(run_segnet_edge("prune", basic_model, "--data", synth_data, "--channels", value, "--out", out),
                       "--channels")
    assert not out.exists()


def test_channels_on_a_model_that_is_not_ours(tmp_path, synth_data):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["model_config"] = '{"class_name": "Functional", "config": {"layers": []}}'
    out = tmp_path / "o.h5"
    assert_usage_error(run_segnet_edge("prune", foreign, "--data", synth_data, "--channels", "0.5", "--out", out),
                       "not a segnet-edge model")
    assert not out.exists()


def test_a_ratio_that_empties_a_group(tmp_path, basic_model, synth_data):
    out = tmp_path / "o.h5"
    line = assert_usage_error(run_segnet_edge("prune", basic_model, "--data", synth_data, "--channels", "0.95",
                                              "--out", out, "--quiet"), "--channels 0.95", "pool1", "with none")
    assert "ratio below" in line
    assert not out.exists() and not list(tmp_path.glob("*.json"))


def test_channels_excludes_weight_pruning_flags(tmp_path, basic_model, synth_data):
    out = tmp_path / "o.h5"
    assert_usage_error(run_segnet_edge("prune", basic_model, "--data", synth_data, "--channels", "0.5",
                                       "--structured", "2:4", "--out", out), "exclude each other")
    assert_usage_error(run_segnet_edge("prune", basic_model, "--data", synth_data, "--channels", "0.5",
                                       "--prune-classifier", "--out", out), "classifier")
    assert not out.exists()


def test_a_ratio_that_empties_a_group_is_refused_before_any_change():
    model = build_model(ModelConfig("segnet-basic", SIZE, 5, 0.125))  # every group 8 wide
    from segnet_edge.device.errors import UsageError

    with pytest.raises(UsageError, match="with none"):
        plan_pruning(model, 0.95)
    assert len(plan_pruning(model, 0.9).keep["pool1"]) == 1  # round(0.8) = 1 channel: allowed


def test_batch_norm_statistics_are_re_estimated_as_the_mean_over_batches():
    from segnet_edge._tf import tf
    from segnet_edge.optimize.channel_prune import recalibrate_batch_norm

    model = _random_model("segnet-basic")
    images = np.random.default_rng(2).normal(0, 40, (4, *SIZE, 3)).astype(np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros((4, *SIZE), np.uint8))).batch(2)
    norm = model.get_layer("conv1_bn")
    conv_out = keras.Model(model.input, model.get_layer("conv1").output)
    expected = np.mean([conv_out(images[i:i + 2]).numpy().mean(axis=(0, 1, 2)) for i in (0, 2)], axis=0)
    assert not np.allclose(norm.moving_mean.numpy(), expected, atol=1e-3)
    momentum = norm.momentum
    assert recalibrate_batch_norm(model, dataset) == 2
    np.testing.assert_allclose(norm.moving_mean.numpy(), expected, rtol=1e-4, atol=1e-4)
    assert norm.momentum == momentum, "the layer's own momentum is restored"
