"""Training end to end on the real CamVid sample: checkpoints, resume, interruption, evaluation."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time

import numpy as np
import pytest

import segnet_edge
from segnet_edge.model_io import read_metadata
from segnet_edge.train import TrainConfig, train
from tests.conftest import CLI, REPO, assert_usage_error, run_cli

SMALL = dict(arch="segnet", alpha=0.125, input_size=(48, 64), batch_size=4, optimizer="adam", lr=1e-3, verbose=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, camvid_sample):
    out = tmp_path_factory.mktemp("run")
    result = train(TrainConfig(data=str(camvid_sample), out=str(out), epochs=2, **SMALL))
    return out, result


def test_training_writes_a_loadable_best_checkpoint_and_a_log(trained, camvid_sample):
    out, result = trained
    assert result.epochs_done == 2 and not result.interrupted
    assert 0 <= result.best_miou <= 1
    assert len(result.class_weights) == 11 and result.class_weights[2] > result.class_weights[3]  # pole > road
    model = segnet_edge.load_model(out / "best.h5")
    meta = read_metadata(out / "best.h5")
    assert meta.ignore_label == 11 and meta.class_names[0] == "Sky" and meta.input_size == (48, 64)
    assert tuple(model.output.shape) == (None, 48, 64, 11)
    with open(out / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["0", "1"] and "val_miou" in rows[0] and "loss" in rows[0]
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_resume_continues_from_the_last_complete_epoch(trained, camvid_sample, tmp_path):
    out, _ = trained
    before = segnet_edge.load_model(out / "last.h5").get_weights()
    result = train(TrainConfig(data=str(camvid_sample), out=str(out), epochs=3, resume=True, **SMALL))
    assert result.epochs_done == 3 and [h["epoch"] for h in result.history] == [3]
    after = segnet_edge.load_model(out / "last.h5").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    assert json.loads((out / "train_state.json").read_text())["epochs_done"] == 3


def test_evaluate_cli_prints_the_paper_metrics_and_writes_json_and_png(trained, camvid_sample, tmp_path):
    out, _ = trained
    result = run_cli("evaluate", out / "best.h5", "--data", camvid_sample, "--split", "val",
                     "--json", tmp_path / "e.json", "--png", tmp_path / "cm.png", "--colour-baseline")
    assert result.returncode == 0, result.stderr
    for needle in ("global accuracy", "class accuracy", "mean IoU", "Pedestrian", "colour IoU"):
        assert needle in result.stdout
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["frames"] == 4 and len(report["confusion"]) == 11
    assert report["baseline"]["mean_iou"] is not None
    cm = np.array(report["confusion"])
    assert cm.sum() > 0 and 0 <= report["scores"]["mean_iou"] <= 1
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_and_train_bad_input_is_one_line_exit_2(trained, camvid_sample, tmp_path):
    out, _ = trained
    assert_usage_error(run_cli("evaluate", tmp_path / "none.h5", "--data", camvid_sample), "no such model file")
    assert_usage_error(run_cli("evaluate", out / "best.h5", "--data", camvid_sample), "no 'test' split")
    (tmp_path / "f").write_text("x")
    assert_usage_error(run_cli("train", "--data", camvid_sample, "--out", tmp_path / "f", "--input-size", "48x64"),
                       "is a file")
    assert_usage_error(run_cli("train", "--data", tmp_path / "nowhere"), "no such dataset")
    assert_usage_error(run_cli("train", "--data", camvid_sample, "--input-size", "16x64", "--out", tmp_path / "o"),
                       "too small")
    assert_usage_error(run_cli("train", "--data", camvid_sample, "--input-size", "big"), "HEIGHTxWIDTH")
    assert_usage_error(run_cli("train", "--data", camvid_sample, "--ignore-label", "255", "--input-size", "48x64",
                               "--out", tmp_path / "o2"), "--ignore-label 11")
    assert not (tmp_path / "o2" / "best.h5").exists()


def test_interrupt_saves_the_last_complete_epoch_and_resume_carries_on(camvid_sample, tmp_path):
    out = tmp_path / "run"
    args = ["train", "--data", str(camvid_sample), "--out", str(out), "--epochs", "50", "--alpha", "0.125",
            "--input-size", "48x64", "--optimizer", "adam", "--lr", "0.001"]
    process = subprocess.Popen([*CLI, *args], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not (out / "train_state.json").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "--resume" in stderr
    done = json.loads((out / "train_state.json").read_text())["epochs_done"]
    assert 1 <= done < 50
    segnet_edge.load_model(out / "last.h5")  # complete and loadable
    result = run_cli(*args[:-6], "--epochs", str(done + 1), "--alpha", "0.125", "--input-size", "48x64",
                     "--optimizer", "adam", "--resume")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["epochs"] == done + 1


def test_mirrored_strategy_trains_and_checkpoints(camvid_sample, tmp_path):
    result = train(TrainConfig(data=str(camvid_sample), out=str(tmp_path), epochs=1, strategy="mirrored", **SMALL))
    assert result.epochs_done == 1
    segnet_edge.load_model(tmp_path / "best.h5")
    import h5py

    from segnet_edge.train import RESUME_GROUP

    with h5py.File(tmp_path / "last.h5", "r") as saved:
        assert len(saved[RESUME_GROUP]) > 1  # iterations + Adam moments, saved from mirrored variables
