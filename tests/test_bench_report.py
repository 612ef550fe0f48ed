"""bench/report.py: ratios, tables, goals and the README block (no timing: numbers are given)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.artifacts import FORMATS, runtime_and_precision  # noqa: E402
from bench.report import (  # noqa: E402
    README_BEGIN,
    README_END,
    PoolingRow,
    TableRow,
    agreement,
    confident_share,
    derive,
    index_memory_table,
    main_table,
    markdown_table,
    miou,
    paired_ratio,
    pooling_table,
    update_readme,
)
from bench.variants import IndexMemory  # noqa: E402


def _row(label, runtime, precision, threads, mean, rss=100.0, size=1_000_000, group="full"):
    return TableRow(group, label, runtime, precision, threads, "argmax", mean * 1.05, mean, mean * 1.1, mean * 0.9,
                    1000 / mean, 5, rss, size)


def test_markdown_table_layout():
    text = markdown_table(["a", "b"], [["x", "1"], ["y", "22"]])
    assert text.splitlines() == ["| a | b |", "| --- | ---: |", "| x | 1 |", "| y | 22 |"]


def test_ratios_are_to_the_keras_row_of_the_same_threads_and_gops_to_the_right_peak():
    rows = [_row("Keras", "keras", "fp32", 1, 2000.0, rss=1000.0, size=120_000_000),
            _row("Keras", "keras", "fp32", 2, 1000.0, rss=1000.0, size=120_000_000),
            _row("TFLite int8", "litert", "int8", 2, 250.0, rss=250.0, size=30_000_000),
            _row("TFLite fp32", "litert", "fp32", 1, 1000.0)]
    keras = {("full", 1): rows[0], ("full", 2): rows[1]}
    derive(rows, keras, {"full": 100_000_000_000}, {"fp32": 300.0, "int8": 1200.0})
    int8, fp32 = rows[2], rows[3]
    assert int8.speedup == pytest.approx(4.0) and fp32.speedup == pytest.approx(2.0)
    assert int8.rss_ratio == pytest.approx(0.25) and int8.size_ratio == pytest.approx(0.25)
    assert int8.gops == pytest.approx(800.0) and int8.peak_share == pytest.approx(800 / 1200)
    assert fp32.gops == pytest.approx(200.0) and fp32.peak_share == pytest.approx(200 / 300)
    text = main_table(rows, "note")
    assert "| TFLite int8 | 2 | 262.5 | 250.0 | 275.0 | 4.00 | 4.00× |" in text
    assert text.endswith("note")


def test_a_failed_row_says_so_and_missing_values_are_dashes():
    row = _row("ORT fp32", "onnxruntime", "fp32", 2, 10.0)
    row.error = "worker died (exit code -9)"
    assert "failed: worker died" in main_table([row])
    ok = _row("TFLite fp16", "litert", "fp16", 2, 10.0)
    assert "| – |" in main_table([ok])  # no agreement, no ratios measured


def test_agreement_and_miou_over_the_frames_both_have():
    ref = {0: np.zeros((2, 2), np.uint8), 1: np.ones((2, 2), np.uint8)}
    other = {0: np.array([[0, 0], [0, 1]], np.uint8), 1: np.ones((2, 2), np.uint8), 5: np.zeros((2, 2), np.uint8)}
    assert agreement(ref, other) == pytest.approx(7 / 8)
    assert agreement(ref, {}) is None
    margins = {0: np.array([[0.5, 0.5], [0.5, 0.01]], np.float16), 1: np.full((2, 2), 0.5, np.float16)}
    assert agreement(ref, other, margins, 0.1) == pytest.approx(1.0)  # the one flip was a near tie
    assert confident_share(margins, 0.1) == pytest.approx(7 / 8)
    truth = np.stack([np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8)])
    assert miou(ref, truth, num_classes=2, ignore_label=None) == pytest.approx(1.0)
    assert miou(ref, None, 2, None) is None


def test_pooling_overhead_goal_and_tf_argmax_comparison():
    keras = PoolingRow("Keras", 110.0, 100.0, 150.0)
    tflite = PoolingRow("TFLite int8", 130.0, 100.0, note="needs Flex ops")
    assert keras.overhead == pytest.approx(0.10) and keras.vs_tf_argmax == pytest.approx(150 / 110)
    assert tflite.overhead == pytest.approx(0.30) and tflite.vs_tf_argmax is None
    text = pooling_table([keras, tflite])
    assert "| Keras | 110.0 | 100.0 | +10.0% | yes | 150.0 | 1.36× |" in text
    assert "| TFLite int8 | 130.0 | 100.0 | +30.0% | NO | needs Flex ops |" in text


def test_pooling_overhead_pairs_each_round():
    """The overhead is the median of per-round ratios (both rows timed back to back), not of medians."""
    ours = [110.0, 220.0, 132.0, 150.0, 99.0]
    plain = [100.0, 200.0, 120.0, 100.0, 110.0]  # ratios 1.1, 1.1, 1.1, 1.5, 0.9
    assert paired_ratio(ours, plain) == pytest.approx(1.10)
    row = PoolingRow("ORT fp32", float(np.median(ours)), float(np.median(plain)), paired_ratio=paired_ratio(ours, plain))
    assert row.argmax_ms / row.plain_ms == pytest.approx(132 / 110)  # what the medians alone would claim: +20%
    assert row.overhead == pytest.approx(0.10) and row.within_goal
    assert "| ORT fp32 | 132.0 | 110.0 | +10.0% | yes |" in pooling_table([row])
    assert paired_ratio(ours, plain[:4]) is None and paired_ratio([], []) is None  # a round missing: no pairing


def test_index_memory_two_bits_against_int64():
    memory = IndexMemory(positions=1_000_000)
    assert (memory.two_bit_bytes, memory.int32_bytes, memory.int64_bytes) == (250_000, 4_000_000, 8_000_000)
    assert "32×" in index_memory_table(memory)  # int64 needs 32x the 2-bit code


def test_readme_block_is_appended_once_then_replaced():
    readme = "# project\n\nintro\n"
    first = update_readme(readme, "table one")
    assert first.count(README_BEGIN) == 1 and "table one" in first and first.startswith("# project")
    second = update_readme(first + "\n## after\n", "table two")
    assert "table one" not in second and "table two" in second and second.count(README_END) == 1
    assert second.rstrip().endswith("## after")


def test_readme_summary_is_three_lines_naming_the_fastest_int8_and_the_missed_goals():
    from bench.report import Goal, Results, readme_summary

    rows = [_row("Keras (TensorFlow)", "keras", "fp32", 2, 1400.0), _row("TFLite int8", "litert", "int8", 2, 340.0),
            _row("ORT QDQ int8", "onnxruntime", "int8", 2, 600.0)]
    derive(rows, {("full", 2): rows[0]}, {"full": 1e11}, {"fp32": 100.0, "int8": 400.0})
    results = Results({"cpu": "Test CPU", "cores": 2, "peak": {"simd": "AVX-512"}}, {}, rows=rows,
                      goals=[Goal("fast", True, ""), Goal("small", False, "")])
    lines = [line for line in readme_summary(results, "2026-12-04").splitlines() if line]
    assert len(lines) == 3 and "docs/benchmarks.md" in lines[0] and "2026-12-04" in lines[0]
    assert lines[1].startswith("Full-size SegNet: TFLite int8 at 2 thread(s) 340 ms") and "4.12× Keras" in lines[1]
    assert lines[2] == "Goals met: 1 of 2; not met: small."


def test_a_rows_runtime_and_precision_come_from_the_format_table():
    assert runtime_and_precision("tflite-fp16") == ("litert", "fp16")
    assert runtime_and_precision("ort-int8") == ("onnxruntime", "int8")
    assert all(runtime_and_precision(name)[0] in ("litert", "onnxruntime") for name in FORMATS)  # CPU table


def test_written_results_name_no_folder_of_this_machine(tmp_path):
    """bench/results.json and docs/benchmarks.md are tracked: the scratch folder, the checkout and ../shared
    become WORK/, relative and ../ paths."""
    from bench.run import REPO, _relative

    text = f'"{tmp_path}/demo_export/model.onnx", "{REPO}/docs/x.md", "{REPO.parent}/shared/data"'
    assert _relative(text, tmp_path) == '"WORK/demo_export/model.onnx", "docs/x.md", "../shared/data"'
