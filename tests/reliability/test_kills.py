"""SIGKILL at seeded random moments: nothing half-written under a final name, and resume picks up exactly."""

from __future__ import annotations

import pytest
from rel_util import record

from tools.reliability.kills import KillTarget, kill_command, kill_train


def test_killed_training_leaves_complete_checkpoints_and_resumes_to_the_right_epoch(rel_data, plan, tmp_path):
    """Kill, resume, kill, ... then resume to the end: epochs 1..N each once, from the last complete one."""
    tally = kill_train([*plan.train_args, "--data", str(rel_data)], plan.train_epochs, plan.kills_train, plan.seed,
                       tmp_path)
    assert tally.kills >= 1, "no kill landed while training ran"
    record(tally, "kill train")


def test_killed_calibration_never_leaves_a_partial_set(rel_data, plan, tmp_path):
    target = KillTarget("calibrate", ["calibrate", "--source", str(rel_data), "--size", plan.size_text, "--count",
                                      str(plan.calib_count), "--holdout", "2", "--force", "--out",
                                      str(tmp_path / "calibrate" / "calib.npz")],
                        tmp_path / "calibrate", plan.kills_calibrate)
    tally = kill_command(target, plan.seed + 1, tmp_path)
    assert (tmp_path / "calibrate" / "calib.npz").is_file()  # the run after the kills completed it
    record(tally, "kill calibrate")


@pytest.mark.parametrize("command", ["prune", "quantize", "convert"])
def test_killed_optimisation_and_conversion_never_leave_partial_files(command, rel_model, rel_data, rel_calib, plan,
                                                                       tmp_path):
    kills = {"prune": plan.kills_prune, "quantize": plan.kills_quantize, "convert": plan.kills_convert}[command]
    if not kills:
        pytest.skip(f"{command} is kill-tested by the full form (make reliability / SEGNET_EDGE_RELIABILITY=full)")
    out = tmp_path / command
    argv = {
        "prune": ["prune", str(rel_model), "--data", str(rel_data), "--epochs", "1", "--batch-size", "4", "--quiet",
                  "--out", str(out / "pruned.h5")],
        "quantize": ["quantize", str(rel_model), "--data", str(rel_data), "--qat", "--epochs", "1", "--batch-size",
                     "4", "--quiet", "--out", str(out / "qat.h5")],
        "convert": ["convert", str(rel_model), "--calib", str(rel_calib), "--formats", "tflite-fp32", "tflite-int8",
                    "onnx-fp32", "--out", str(out / "export")],
    }[command]
    if command == "convert":
        target = KillTarget(command, argv, out / "export", kills, ok_codes=(0, 1), watch=out, max_writes=4)
    else:
        target = KillTarget(command, argv, out, kills, max_writes=2)
    record(kill_command(target, plan.seed + 2, tmp_path), f"kill {command}")
