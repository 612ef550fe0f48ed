"""Mixed-precision int8 TFLite (`--keep-float`, `--layer-error`, `--precision-search`) on the fitted small SegNet.

SegNet only (the search and the table are per layer; SegNet-Basic's graph is the same kind, smaller), on 8
held-out frames: the conversions here are the suite's, so they are kept few.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import assert_usage_error, run_cli

SEGNET = pytest.mark.parametrize("trained_model", ["segnet"], indirect=True)
FRAMES = 8


BUDGET = 0.999


@pytest.fixture(scope="module")
def searched(tmp_path_factory, trained_model, calib_npz, scene_dataset):
    """One conversion for every test here: the fp32 model, and the int8 one searched with float input and output
    to a budget above full int8 (its input quantization alone loses pixels) and below the float graph."""
    from segnet_edge.convert import ConvertOptions, convert_model

    out = tmp_path_factory.mktemp("mixed") / "out"
    options = ConvertOptions(parity_frames=FRAMES, io_dtype="float32", precision_search=True,
                             search_agreement=BUDGET, search_miou_points=0.5)
    return convert_model(trained_model, out, ["tflite-fp32", "tflite-int8"], calib_npz, eval_data=scene_dataset,
                         options=options)


@SEGNET
def test_keeping_every_layer_float_reproduces_the_float_artifact(searched):
    """The per-layer table's all-float graph (every layer kept float, --keep-float all) agrees with Keras as the
    fp32 model does, on the same frames."""
    fp32, int8 = searched.artifact("tflite-fp32"), searched.artifact("tflite-int8")
    table = int8.mixed_precision.layer_errors
    assert table.frames == fp32.parity.frames
    assert abs(table.float_agreement - fp32.parity.agreement) <= 0.0005
    assert table.int8_agreement < table.float_agreement


@SEGNET
def test_search_meets_its_budget_on_the_frames_it_reports(searched):
    """The chosen artifact, measured again by the parity check on the same frames, meets the budget; the path is
    worst-error first."""
    artifact = searched.artifact("tflite-int8")
    record = artifact.mixed_precision
    search, table = record.search, record.layer_errors
    assert search.frames == artifact.parity.frames == FRAMES
    assert search.steps[0].layers == () and not search.steps[0].meets(search.budget), "full int8 met it already"
    assert search.chosen is not None, search.lines()
    chosen = search.steps[search.chosen]
    assert chosen.layers == tuple(table.ranking()[:len(chosen.layers)]) == record.kept
    assert artifact.parity.agreement >= BUDGET and abs(artifact.parity.miou_delta_points) <= 0.5
    assert artifact.parity.agreement == pytest.approx(chosen.agreement, abs=1e-6)
    assert artifact.passed and any(c.name == "precision search budget" and c.passed for c in artifact.checks)
    assert record.float_ops >= len(record.kept) and record.size_bytes > record.int8_size_bytes
    # the per-layer table: every layer once, pooling flips per level (SegNet: 5), worst first
    assert len(table.rows) == len({row.layer for row in table.rows}) >= 36
    assert all(len(row.index_flips) == 5 for row in table.rows)
    assert [row.points for row in table.rows] == sorted((row.points for row in table.rows), reverse=True)
    saved = searched.to_json()["artifacts"][1]["mixed_precision"]
    assert saved["kept_float"] == list(record.kept) and saved["search"]["reached"]
    markdown = (Path(searched.out_dir) / "report.md").read_text()
    assert "Per-layer int8 error" in markdown and "Precision search" in markdown
    assert f"kept float: {record.kept[0]}" in markdown


def test_search_stops_with_a_line_when_the_budget_is_unreachable():
    from segnet_edge.convert.precision_search import Budget, Step, search

    def evaluate(layers):
        return Step(layers, 0.95 + 0.01 * len(layers), None, 1.0 + len(layers), 1.0 + len(layers), 1000)

    found = search((), ["a", "b", "c"], evaluate, Budget(0.99, 0.5), frames=4)
    assert found.chosen is None and len(found.steps) == 4
    assert "budget unreachable: with every layer float the graph reaches 98.000%" in found.lines()[-1]
    slow = search((), ["a", "b", "c"], evaluate, Budget(0.99, 0.5, max_latency=2.5), frames=4)
    assert slow.chosen is None and len(slow.steps) == 3 and "3.00x the latency" in slow.stopped
    met = search(("a",), ["c", "a", "b"], evaluate, Budget(0.97, 0.5), frames=4)
    assert met.steps[met.chosen].layers == ("a", "c")
    # agreement met, but past the latency limit: not chosen, and the search says why it stopped
    too_slow = search(("a",), ["c"], evaluate, Budget(0.97, 0.5, max_latency=2.5), frames=4)
    assert too_slow.chosen is None and "limit 2.5x" in too_slow.stopped


@SEGNET
@pytest.mark.parametrize("args, needle", [
    (["--keep-float", "block9_conv1,block1_conv1"], "no layer 'block9_conv1'"),
    (["--precision-search", "--search-agreement", "98"], "--search-agreement"),
    (["--keep-float", "block1_conv1", "--formats", "tflite-fp32"], "--keep-float applies to"),
    (["--layer-error", "--formats", "onnx-int8"], "add tflite-int8"),
    (["--io", "float32"], "--io float32"),
])
def test_bad_mixed_precision_input(tmp_path, trained_model, calib_npz, args, needle):
    out = tmp_path / "out"
    assert_usage_error(run_cli("convert", trained_model, "--calib", calib_npz, *args, "--out", out), needle)
    assert not out.exists()


@SEGNET
def test_keep_float_leaves_onnx_nodes_without_qdq(tmp_path, trained_model, calib_npz, scene_dataset):
    """The QDQ graph's kept convolution reads a float weight (no DequantizeLinear before it); the others stay int8."""
    import onnx

    from segnet_edge.convert import ConvertOptions, convert_model

    out = tmp_path / "out"
    report = convert_model(trained_model, out, ["onnx-int8"], calib_npz, eval_data=scene_dataset,
                           options=ConvertOptions(parity_frames=FRAMES, keep_float=("block1_conv1",)))
    artifact = report.artifact("onnx-int8")
    assert artifact.passed, report.failures()
    assert any("kept float (--keep-float)" in note and "block1_conv1" in note for note in artifact.notes)
    graph = onnx.load(str(out / "model_int8.onnx")).graph
    dequantized = {node.output[0] for node in graph.node if node.op_type == "DequantizeLinear"}
    convs = {node.name: node.input[1] in dequantized for node in graph.node if node.op_type == "Conv"}
    kept = [name for name in convs if "/block1_conv1/" in name]
    assert kept and not any(convs[name] for name in kept)
    assert sum(convs.values()) == len(convs) - len(kept)
