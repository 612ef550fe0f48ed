"""`segnet-edge profile`: several models, one comparison, four report files; bad input in one line."""

from __future__ import annotations

import json
from dataclasses import replace

from device_util import assert_one_line_error, profile_no_tf

from segnet_edge.device.session import RunConfig, run_session


def test_profile_compares_models_and_writes_four_files(artifacts, tmp_path):
    out = tmp_path / "profile"
    models = [artifacts / "model_fp32.tflite", artifacts / "model_int8.tflite", artifacts / "model.onnx"]
    result = profile_no_tf(*models, "--frames", "25", "--warmup", "5", "--threads", "1", "--width", "160",
                           "--height", "120", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "BLOCKED IMPORTS" not in result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("| model_") or line.startswith("| model.")]
    assert [row.split("|")[1].strip() for row in table] == ["model_fp32.tflite", "model_int8.tflite", "model.onnx"]
    assert sorted(p.name for p in out.iterdir()) == ["frames.csv", "profile.json", "profile.md", "profile.png"]
    report = json.loads((out / "profile.json").read_text())
    assert [m["backend"] for m in report["models"]] == ["litert", "litert", "onnxruntime"]
    for model in report["models"]:
        assert model["frames"] == 20 and model["warmup_frames"] == 5 and model["fps"] > 0
        for stage in ("capture", "preprocess", "inference", "postprocess", "render", "write", "total"):
            stats = model["latency_ms"][stage]
            assert set(stats) == {"mean", "p50", "p90", "p99", "max"}
            assert 0 <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
        memory = model["memory"]
        assert memory["rss_peak_mb"] > 0 and "rss_growth_mb" in memory
        # the split: before load <= with the model loaded; every sample under the process's high-water mark
        assert 0 < memory["rss_before_load_mb"] <= memory["rss_loaded_mb"] + 1
        assert max(memory["rss_loaded_mb"], memory["rss_first_frame_mb"], memory["rss_steady_mb"],
                   memory["rss_peak_mb"]) <= memory["rss_hwm_mb"] + 1
    assert report["host"]["threads"] == 1 and report["config"]["source"] == "synthetic"
    assert "| model_int8.tflite | litert | 20 |" in (out / "profile.md").read_text()
    assert "RSS load / first / steady MB" in (out / "profile.md").read_text()
    assert len((out / "frames.csv").read_text().splitlines()) == 1 + 3 * 25


def test_profile_reopens_a_file_source_for_each_model(artifacts, scene_video, tmp_path):
    """In process: the same pipeline as the CLI; a video is replayed from its start for every model."""
    config = replace(RunConfig.profile_defaults(), source=str(scene_video), out=str(tmp_path), plot=False)
    result = run_session([artifacts / "model_fp32.tflite", artifacts / "model_fp32.tflite"], config,
                         log=lambda _: None)
    keys = list(result.records)
    assert keys == [str(artifacts / "model_fp32.tflite"), f"{artifacts / 'model_fp32.tflite'}#2"]
    assert [len(rows) for rows in result.records.values()] == [18, 18]
    assert [m.frames for m in result.report.models] == [8, 8]  # 18 frames - 10 warm-up
    assert all(m.ended_by == "end of source" for m in result.report.models)


def test_profile_bad_input_is_one_line(artifacts, tmp_path):
    model = artifacts / "model_fp32.tflite"
    assert_one_line_error(profile_no_tf(tmp_path / "missing.onnx"), "segnet-edge profile: error:", "no such model")
    assert_one_line_error(profile_no_tf(model, artifacts / "nope.onnx"), "nope.onnx: no such model file")
    assert_one_line_error(profile_no_tf(model, "--frames", "0"), "--frames must be at least 1")
    assert_one_line_error(profile_no_tf(model, "--threads", "0"), "--threads must be at least 1")
    assert_one_line_error(profile_no_tf(model, "--source", "rtsp://u:secret@127.0.0.1:9/x", "--frames", "3"),
                          "rtsp://***@127.0.0.1:9/x")
    assert_one_line_error(profile_no_tf(model, "--warmup", "-3"), "--warmup")
    assert_one_line_error(profile_no_tf(model, "--providers", "TensorrtExecutionProvider", "--backend",
                                        "onnxruntime"), "TensorrtExecutionProvider")
