"""bench/budget.py: each artifact streamed by run_camera.py in a process of its own, read back into the table."""

from __future__ import annotations

import pytest

from bench.budget import budget_table, measure, soak_slope


def test_soak_slope_is_mb_per_thousand_frames():
    assert soak_slope([100.0 + 0.002 * i for i in range(200)]) == pytest.approx(2.0)
    settling = [100.0 + 0.5 * i for i in range(50)] + [125.0] * 50  # grows while it settles, then flat
    assert soak_slope(settling) == pytest.approx(0.0)
    assert soak_slope([100.0, 500.0]) == 0.0  # too few frames to fit a slope


def test_budget_runs_each_artifact_in_its_own_process(artifacts, tmp_path):
    rows = measure({"int8": artifacts / "model_int8.tflite", "gone": tmp_path / "missing.tflite"}, frames=30,
                   warmup=5, threads=1, work=tmp_path, log=lambda _: None)
    row, failed = rows
    assert row.error is None and row.frames == 25 and row.runtime.startswith("ai-edge-litert")
    # a fresh process holding one tiny model: nowhere near a process that imported TensorFlow (~1 GB)
    assert 0 < row.loaded_rss_mb <= row.steady_rss_mb + 5 and row.steady_rss_mb <= row.peak_rss_mb < 400
    assert row.fps > 0 and row.inference_ms > 0 and row.pre_post_share > 0
    assert 0 < row.released_mb < 1  # LiteRT dropped the tiny file's mapped pages (~0.5 MB) once loaded
    assert failed.error and "no such model" in failed.error
    table = budget_table(rows)
    assert "| int8 | ai-edge-litert" in table
    assert "| gone | failed:" in table
