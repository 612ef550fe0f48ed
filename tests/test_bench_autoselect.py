"""`--backend auto` (segnet_edge.device.autoselect): picks the faster artifact by measuring, says why.

Timing is made deterministic by wrapping the real backends: each artifact really runs, but the
inference time it reports is fixed per file, so the test asserts the choice, not a stopwatch.
"""

from __future__ import annotations

import json

import pytest

from segnet_edge.device.autoselect import AutoChoice, choose, expand
from segnet_edge.device.backends.base import BackendOptions, load_backend
from segnet_edge.device.errors import UsageError
from tests.conftest import run_cli


def _fixed_time_loader(seconds_by_name: dict[str, float]):
    """load_backend, but infer() reports a fixed inference_time per file name."""

    def load(path, name=None, options=None):
        backend = load_backend(path, name, options)
        real_infer = backend.infer

        def infer(x):
            out = real_infer(x)
            backend.inference_time = seconds_by_name[backend.path.name]
            return out

        backend.infer = infer
        return backend

    return load


def test_auto_picks_the_faster_of_two_backends(artifacts):
    models = [artifacts / "model.onnx", artifacts / "model_fp32.tflite"]
    for fast, slow in (("model.onnx", "model_fp32.tflite"), ("model_fp32.tflite", "model.onnx")):
        load = _fixed_time_loader({fast: 0.010, slow: 0.030})
        choice = choose(models, BackendOptions(threads=1), frames=3, warmup=1, load=load)
        assert isinstance(choice, AutoChoice)
        assert choice.chosen.path.endswith(fast)
        assert choice.chosen.backend == ("onnxruntime" if fast.endswith(".onnx") else "litert")
        assert choice.chosen.mean_ms == pytest.approx(10.0) and choice.chosen.frames == 3
        assert f"{fast} on {choice.chosen.backend}" in choice.reason and "3.00x faster" in choice.reason
        assert "chosen" in choice.table()


def test_a_candidate_that_cannot_run_is_reported_not_chosen(artifacts, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer")
    choice = choose([artifacts / "model_fp32.tflite", broken], BackendOptions(threads=1), frames=1, warmup=0)
    assert choice.chosen.path.endswith("model_fp32.tflite")
    failed = next(c for c in choice.candidates if c.path.endswith("broken.tflite"))
    assert failed.error and failed.mean_ms is None
    assert "could not run here" in choice.reason
    with pytest.raises(UsageError, match="none of the models runs"):
        choose([broken], BackendOptions(threads=1), frames=1, warmup=0)


def test_folders_expand_to_their_artifacts(artifacts, tmp_path):
    found = [p.name for p in expand([artifacts])]
    assert {"model_fp32.tflite", "model_int8.tflite", "model.onnx"} <= set(found)
    with pytest.raises(UsageError, match="no .tflite"):
        expand([tmp_path])
    for name in ("model.plan", "model.trt", "model.engine", "model.engine.json", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in expand([tmp_path])] == ["model.engine", "model.plan", "model.trt"]  # every engine suffix


def test_profile_backend_auto_streams_the_chosen_model_and_writes_why(artifacts, tmp_path):
    out = tmp_path / "profile"
    result = run_cli("profile", artifacts / "model_fp32.tflite", artifacts / "model.onnx", "--backend", "auto",
                     "--frames", "4", "--warmup", "1", "--threads", "1", "--out", out, "--no-plot", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    decision = json.loads((out / "autoselect.json").read_text())
    chosen = decision["chosen"]["path"]
    assert {c["path"] for c in decision["candidates"]} == {str(artifacts / "model_fp32.tflite"),
                                                           str(artifacts / "model.onnx")}
    assert decision["chosen"]["mean_ms"] == min(c["mean_ms"] for c in decision["candidates"])
    assert "lowest mean inference time" in decision["reason"]
    assert "auto: chose" in result.stderr
    report = json.loads((out / "profile.json").read_text())
    assert [m["model"] for m in report["models"]] == [chosen]
