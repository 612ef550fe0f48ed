"""Bad samples, a broken video, outputs that cannot be written, and model files that would run code."""

from __future__ import annotations

from rel_util import record

from tools.reliability import inputs


def test_bad_samples_stop_the_run_naming_the_file_or_are_skipped_and_counted(rel_data, plan, tmp_path):
    """Every kind through the loader (fail and skip), and `segnet-edge train` with the default policy."""
    tally = inputs.bad_datasets(rel_data, tmp_path, plan.input_size, [*plan.train_args, "--epochs", "1"])
    if plan.cli_skip_run:
        tally.merge(inputs.skip_run(rel_data, tmp_path, [*plan.train_args, "--epochs", "1"]))
    assert sum(tally.tried.values()) >= len(inputs.DATASET_KINDS) + 2
    record(tally, "bad datasets")


def test_a_video_with_broken_frames_streams_to_the_end(artifacts, plan, tmp_path):
    record(inputs.broken_video(tmp_path, artifacts / "model_int8.tflite", plan.input_size), "broken video")


def test_unwritable_outputs_end_in_one_line_and_leave_no_temporary(artifacts, rel_data, rel_model, plan, tmp_path):
    tally = inputs.full_disk(tmp_path, rel_data, artifacts / "model_int8.tflite", plan.input_size,
                             keras_model=rel_model if plan.full_disk_evaluate else None)
    if plan.file_size_limit:
        tally.merge(inputs.file_size_limit(tmp_path, [*plan.train_args, "--epochs", "1"], rel_data))
    assert tally.tried, "/dev/full is missing: nothing was tried"
    record(tally, "unwritable outputs")


def test_model_files_that_would_run_code_are_refused_before_it_runs(rel_data, rel_calib, plan, tmp_path):
    """A Lambda at the top level, nested in TimeDistributed(Sequential), in a .keras file; a foreign class
    and module. Each command that reads a Keras file refuses them with one line, and the code never runs."""
    models = inputs.make_unsafe_models(tmp_path / "unsafe")
    tally = inputs.unsafe_loads(models, plan.unsafe_cli_runs(rel_data, rel_calib, tmp_path / "out"), rel_data)
    assert tally.unsafe_tried >= len(models) + len(plan.unsafe_commands)
    record(tally, "unsafe models")


def test_unsafe_load_is_an_explicit_opt_in(tmp_path):
    """The same Lambda file loads with unsafe=True and its code runs: the refusal is the check, not luck."""
    from segnet_edge.model_io import load_model

    path, marker = inputs.make_unsafe_models(tmp_path)["Lambda layer"]
    load_model(path, unsafe=True)
    assert marker.exists()
