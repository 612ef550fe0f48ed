"""`segnet-edge evaluate ARTIFACT`: the converted files scored on a labelled split through the board's runtime,
so the mIoU a user reads is the one of what ships."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from tests.conftest import REPO, assert_usage_error, run_cli

ARTIFACTS = (("model_fp32.tflite", "ai-edge-litert"), ("model_int8.tflite", "ai-edge-litert"),
             ("model.onnx", "onnxruntime"), ("model_ort_int8.onnx", "onnxruntime"))


def test_artifacts_score_as_their_keras_model_on_the_same_split(converted, trained_model, scene_dataset, tmp_path):
    assert converted.returncode in (0, 1), converted.stderr
    models = [trained_model, *(converted.out / name for name, _ in ARTIFACTS)]
    result = run_cli("evaluate", *models, "--data", scene_dataset, "--split", "val", "--json", tmp_path / "e.json",
                     "--colour-baseline")
    assert result.returncode == 0, result.stderr
    reports = json.loads((tmp_path / "e.json").read_text())["reports"]
    assert [r["model"] for r in reports] == [str(m) for m in models]
    keras = reports[0]
    assert keras["runtime"] == "Keras (TensorFlow)"
    # one table, side by side: a column per model, and each model's mIoU change from the first
    assert all(f"[{i + 1}] {r['model']}: {r['runtime']}" in result.stdout for i, r in enumerate(reports))
    assert "mIoU vs [1]" in result.stdout and "[5]" in result.stdout
    assert "colour" in result.stdout  # the colour-only baseline: fitted once, its own column
    assert keras["baseline"]["mean_iou"] is not None and all(r["baseline"] is None for r in reports[1:])
    reference = np.array(keras["confusion"])
    for (name, runtime), report in zip(ARTIFACTS, reports[1:]):
        assert report["runtime"].startswith(runtime) and report["frames"] == keras["frames"], report
        confusion = np.array(report["confusion"])
        assert confusion.sum() == reference.sum()  # the same labelled pixels, void excluded alike
        moved = np.abs(confusion - reference).sum() / 2 / reference.sum()  # pixels whose predicted class moved
        if "int8" in name:
            assert moved < 0.05, (name, moved)
            assert abs(report["scores"]["mean_iou"] - keras["scores"]["mean_iou"]) <= 0.01, name
        else:
            assert moved < 0.001, (name, moved)
            assert abs(report["scores"]["mean_iou"] - keras["scores"]["mean_iou"]) < 1e-3, name


def test_one_artifact_prints_its_own_table(converted, scene_dataset):
    result = run_cli("evaluate", converted.out / "model_int8.tflite", "--data", scene_dataset, "--split", "val",
                     "--threads", "1")
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{converted.out / 'model_int8.tflite'} on ") and "threads=1" in first
    assert "mean IoU" in result.stdout and "[1]" not in result.stdout


def test_an_artifact_is_scored_without_tensorflow(converted, scene_dataset):
    """The board's path: device preprocessing, the artifact's quantization and runtime, no TensorFlow."""
    code = ("import json, sys\n"
            "from segnet_edge.evaluate import EvaluateConfig, evaluate\n"
            f"r = evaluate(EvaluateConfig(model={str(converted.out / 'model_int8.tflite')!r}, "
            f"data={str(scene_dataset)!r}, split='val', threads=1))\n"
            "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'miou': r.scores.mean_iou, 'rt': r.runtime}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert not got["tf"] and 0.5 < got["miou"] <= 1 and "threads=1" in got["rt"], got


def test_bad_artifact_for_evaluate_is_one_line_exit_2(converted, scene_dataset, tmp_path):
    fake = tmp_path / "model.tflite"
    fake.write_bytes(b"not a flatbuffer " * 256)
    assert_usage_error(run_cli("evaluate", fake, "--data", scene_dataset, "--split", "val"), "TFLite")
    int8 = converted.out / "model_int8.tflite"
    assert_usage_error(run_cli("evaluate", int8, int8, "--data", scene_dataset, "--split", "val", "--png",
                               tmp_path / "cm.png"), "--png", "one model")
    assert not (tmp_path / "cm.png").exists()
    assert_usage_error(run_cli("evaluate", tmp_path / "none.onnx", "--data", scene_dataset, "--split", "val"),
                       "no such model file")
    assert_usage_error(run_cli("evaluate", converted.out / "model_int8.tflite", "--data", scene_dataset,
                               "--split", "nope"), "nope")


def test_a_damaged_artifact_is_refused_before_the_data_is_read(converted, scene_dataset, tmp_path):
    """A flipped byte in the weights: one line naming the file (its payload digest), exit 2, no report."""
    from segnet_edge.device.backends.tflite_file import MODEL, FlatBuffer

    int8 = converted.out / "model_int8.tflite"
    data = bytearray(int8.read_bytes())
    walker = FlatBuffer(bytes(data))
    buffers = walker.tables(walker.root(), MODEL["buffers"], "buffers")
    start, length = max((walker.vector(b, 0, 1, "data") for b in buffers), key=lambda v: v[1])  # the largest weight
    data[start + length // 2] ^= 0x04
    damaged = tmp_path / "model_int8.tflite"
    damaged.write_bytes(bytes(data))
    assert_usage_error(run_cli("evaluate", damaged, "--data", scene_dataset, "--split", "val", "--json",
                               tmp_path / "e.json"), str(damaged), "damaged", "copy it again")
    assert not (tmp_path / "e.json").exists()
    unverified = run_cli("evaluate", damaged, "--data", scene_dataset, "--split", "val", "--no-verify")
    assert unverified.returncode == 0, unverified.stderr
