"""Pruning with real tfmot on tiny SegNets: target sparsity, dense BN and classifier, 2:4, a plain output file."""

from __future__ import annotations

import json
from dataclasses import replace

import h5py
import numpy as np
import pytest

from segnet_edge.model_io import load_model, read_metadata
from segnet_edge.optimize.report import m_by_n_violations


def _stored_classes(path) -> set[str]:
    with h5py.File(path, "r") as f:
        config = json.loads(f.attrs["model_config"])
    return {layer["class_name"] for layer in config["config"]["layers"]}


def test_every_pruned_kernel_reaches_the_target_and_bn_and_classifier_stay_dense(pruned_basic, basic_model):
    report, out = pruned_basic
    model = load_model(out)
    original = load_model(basic_model)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [layer.name for layer in convs][-1] == "conv_classifier" == report.classifier
    for layer in convs:
        kernel = layer.kernel.numpy()
        zeros = float((kernel == 0).mean())
        if layer.name == "conv_classifier":
            assert zeros == 0.0, "the classifier is kept dense unless --prune-classifier"
        else:
            assert zeros == pytest.approx(0.5, abs=0.01), layer.name
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            assert np.count_nonzero(layer.gamma.numpy()) == layer.gamma.shape[0], layer.name
    assert report.sparsity_after.pruned_sparsity == pytest.approx(0.5, abs=0.01) and report.target_reached
    assert report.sparsity_before.kernel_zeros == 0
    # the untouched original: pruning worked on a copy
    assert all(np.count_nonzero(layer.kernel.numpy()) == layer.kernel.shape.num_elements()
               for layer in original.layers if type(layer).__name__ == "Conv2D")


def test_the_output_is_a_plain_segnet_edge_model_with_a_report_beside_it(pruned_basic, basic_model):
    report, out = pruned_basic
    classes = _stored_classes(out)
    assert not any("Prune" in name for name in classes), classes
    assert {"MaxPoolingWithArgmax2D", "MaxUnpooling2D", "LocalResponseNormalization"} <= {
        name.split(">")[-1] for name in classes}
    unsealed = lambda path: replace(read_metadata(path), payload_sha256=None)  # noqa: E731 - each file its own digest
    assert unsealed(out) == unsealed(basic_model)
    model = load_model(out)
    probabilities = model(np.zeros((1, 32, 48, 3), np.float32)).numpy()
    assert probabilities.shape == (1, 32, 48, read_metadata(out).num_classes)
    saved = json.loads(out.with_name("basic_pruned.prune.json").read_text())
    assert saved["achieved_sparsity"] == pytest.approx(0.5, abs=0.01)
    for key in ("miou_before", "miou_after"):
        assert 0.0 <= saved[key] <= 1.0
    for key in ("size_before", "size_after"):
        assert saved[key]["raw"] > saved[key]["gzip"] > 0
    assert saved["size_after"]["gzip"] < saved["size_before"]["gzip"], "zeros must compress"
    names = [layer["name"] for layer in saved["sparsity_after"]["layers"]]
    assert "conv1" in names and "conv_classifier" in names
    assert saved["sparsity_after"]["total_params"] == load_model(basic_model).count_params()


def test_structured_2_4_through_the_cli(pruned_24, segnet_model):
    result, out = pruned_24
    assert "pattern check" in result.stdout and "ok: every group" in result.stdout
    saved = json.loads(out.with_name("segnet_24.prune.json").read_text())
    assert saved["pattern_ok"] is True and saved["target_reached"] is True
    assert saved["achieved_sparsity"] == pytest.approx(0.5, abs=0.02)
    model = load_model(out)
    checked = 0
    for layer in model.layers:
        if type(layer).__name__ != "Conv2D":
            continue
        violations = m_by_n_violations(layer.kernel.numpy(), 2, 4)
        if layer.name in ("block1_conv1_D", "block1_conv1"):
            # the classifier, and the first conv (3 input channels: no sparse kernel runs it), stay dense;
            # they must fail the check, or the check proves nothing
            assert violations > 0, layer.name
            assert layer.name in saved["kept_dense"]
        else:
            assert violations == 0, layer.name
            checked += 1
    assert checked == 24
