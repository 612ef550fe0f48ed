"""Bad input to `segnet-edge prune` / `quantize`: exit code 2 and one line naming the problem."""

from __future__ import annotations

import h5py
import pytest

from tests.conftest import assert_usage_error
from tests.optimize.conftest import run_segnet_edge


def test_missing_model(tmp_path):
    assert_usage_error(run_segnet_edge("prune", tmp_path / "none.h5", "--data", tmp_path, "--out", tmp_path / "o.h5"),
                       "no such model file")
    assert_usage_error(run_segnet_edge("quantize", tmp_path / "none.h5", "--data", tmp_path, "--qat"),
                       "no such model file")


def test_a_model_that_is_not_segnet_edge(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f.attrs["model_config"] = '{"class_name": "Functional", "config": {"layers": []}}'
    assert_usage_error(run_segnet_edge("prune", foreign, "--data", tmp_path, "--out", tmp_path / "o.h5"),
                       "not a segnet-edge model")
    text = tmp_path / "model.txt"
    text.write_text("hello")
    assert_usage_error(run_segnet_edge("quantize", text, "--data", tmp_path, "--qat"), "not a Keras model file")


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.2", "half"])
def test_sparsity_outside_zero_one(tmp_path, value):
    assert_usage_error(run_segnet_edge("prune", tmp_path / "m.h5", "--data", tmp_path, "--sparsity", value),
                       "--sparsity")


@pytest.mark.parametrize("value", ["4:2", "2-4", "2:4:8", "0:4"])
def test_bad_structured_value(tmp_path, value):
    assert_usage_error(run_segnet_edge("prune", tmp_path / "m.h5", "--data", tmp_path, "--structured", value),
                       "--structured")


def test_conflicting_and_missing_flags(tmp_path, basic_model):
    assert_usage_error(run_segnet_edge("prune", basic_model, "--data", tmp_path, "--structured", "2:4",
                                       "--sparsity", "0.3"), "exclude each other")
    assert_usage_error(run_segnet_edge("prune", basic_model, "--data", tmp_path, "--out", tmp_path / "o.onnx"),
                       ".h5 or .keras")
    assert_usage_error(run_segnet_edge("quantize", basic_model, "--data", tmp_path), "--qat")
    assert_usage_error(run_segnet_edge("prune", basic_model, "--data", tmp_path / "nowhere", "--out",
                                       tmp_path / "o.h5", "--quiet"), "nowhere")
