"""Bad input to `segnet-edge convert`: one line on stderr, exit code 2, and nothing written."""

from __future__ import annotations

import h5py
import pytest

from tests.conftest import assert_usage_error, run_cli


def assert_nothing_written(out, before: set[str]) -> None:
    assert not out.exists(), f"{out} was created"
    assert {p.name for p in out.parent.iterdir()} == before, "something was left beside OUT"


def snapshot(folder) -> set[str]:
    folder.mkdir(parents=True, exist_ok=True)
    return {p.name for p in folder.iterdir()}


def test_not_a_model_file(tmp_path):
    text = tmp_path / "model.txt"
    text.write_text("hello")
    before = snapshot(tmp_path)
    assert_usage_error(run_cli("convert", text, "--out", tmp_path / "out"), "not a Keras model file")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x00not hdf5" * 10)
    before = snapshot(tmp_path)
    assert_usage_error(run_cli("convert", garbage, "--out", tmp_path / "out"), "unreadable model file")
    assert_nothing_written(tmp_path / "out", before)
    assert_usage_error(run_cli("convert", tmp_path / "missing.h5"), "no such model file")


def test_not_a_segnet_edge_model(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:  # an HDF5 Keras-like file without our metadata
        f.attrs["model_config"] = '{"class_name": "Functional", "config": {"layers": []}}'
    before = snapshot(tmp_path)
    assert_usage_error(run_cli("convert", foreign, "--out", tmp_path / "out"), "not a segnet-edge model")
    assert_nothing_written(tmp_path / "out", before)


def test_unknown_format(tmp_path, trained_model):
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    assert_usage_error(run_cli("convert", trained_model, "--formats", "tflite-int4", "--out", out),
                       "unknown format 'tflite-int4'", "tflite-int8")
    assert_nothing_written(out, before)


def test_calibration_frames_of_the_wrong_size(tmp_path, trained_model, scene_dataset):
    from segnet_edge.calibration import CalibrationRecipe, build_calibration_set

    calib = tmp_path / "calib_small.npz"
    build_calibration_set(CalibrationRecipe(source=str(scene_dataset), size=(16, 24), count=4, holdout=0)).save(calib)
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    assert_usage_error(run_cli("convert", trained_model, "--calib", calib, "--out", out),
                       "frames are 16x24 but the model takes 32x48", "--size 32x48")
    assert_nothing_written(out, before)
    not_npz = tmp_path / "calib.npz"
    not_npz.write_text("no")
    assert_usage_error(run_cli("convert", trained_model, "--calib", not_npz, "--out", out),
                       "not a segnet-edge calibration set")


def test_output_folder_is_a_file(tmp_path, trained_model):
    out = tmp_path / "out"
    out.write_text("a file")
    assert_usage_error(run_cli("convert", trained_model, "--out", out), "is a file")
    assert out.read_text() == "a file"


def test_int8_asked_without_calibration(tmp_path, trained_model):
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    assert_usage_error(run_cli("convert", trained_model, "--formats", "tflite-int8", "--out", out),
                       "tflite-int8", "calibration set")
    assert_nothing_written(out, before)


@pytest.mark.parametrize("args, needle", [
    (["--io", "int16"], "--io"),
    (["--batch", "0"], "--batch"),
    (["--trt-version", "seven"], "--trt-version"),
    (["--input-size", "32"], "HEIGHTxWIDTH"),
    (["--onnx-calib", "entropy"], "--onnx-calib"),
    (["--onnx-calib-percentile", "100"], "--onnx-calib-percentile"),
    (["--tflite-calib", "entropy"], "--tflite-calib"),
    (["--tflite-calib-percentile", "89"], "--tflite-calib-percentile"),
])
def test_bad_options(tmp_path, trained_model, args, needle):
    out = tmp_path / "out"
    assert_usage_error(run_cli("convert", trained_model, *args, "--out", out), needle)
    assert not out.exists()


def test_a_failing_format_leaves_no_partial_artifacts(tmp_path, trained_model, scene_dataset):
    """--calib-data with too few frames fails after the float formats would have been possible."""
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    result = run_cli("convert", trained_model, "--formats", "tflite-int8", "--calib-data", scene_dataset,
                     "--calib-count", "500", "--out", out)
    assert result.returncode == 2
    assert "fewer than the 500 asked for" in result.stderr.strip().splitlines()[-1]
    assert_nothing_written(out, before)
