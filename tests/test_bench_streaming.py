"""bench/streaming.py's parts: a child's own peak memory, the N-frame datasets, and the verdicts it prints."""

from __future__ import annotations

import sys

import cv2
import pytest

from bench.streaming import RssRow, StreamingResults, peak_rss, write_dataset
from segnet_edge.data.layout import find_samples, load_class_info


def test_peak_rss_is_the_childs_own_maximum():
    ballast = bytearray(400 * 2**20)  # this process is big: a child forked from it must not count it
    ballast[::4096] = b"x" * len(ballast[::4096])
    big, _ = peak_rss([sys.executable, "-c", "b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096])"])
    small, _ = peak_rss([sys.executable, "-c", "pass"])
    assert 300 <= big < 400 and small < 100, (big, small)
    with pytest.raises(RuntimeError, match="failed"):
        peak_rss([sys.executable, "-c", "raise SystemExit(3)"])


def test_datasets_of_any_length_cycle_the_source_frames(camvid_sample, tmp_path):
    data = write_dataset(tmp_path / "d", camvid_sample, 40)
    train = find_samples(data, "train")
    assert len(train) == 40 and len(find_samples(data, "val")) == 10
    assert train[0] == train[16] and all(s.image.is_file() and s.label.is_file() for s in train)
    assert load_class_info(data).num_classes == 11  # still read as CamVid
    small = write_dataset(tmp_path / "small", camvid_sample, 6, stored_size=(32, 48))
    sample = find_samples(small, "train")[0]
    assert cv2.imread(str(sample.image)).shape == (32, 48, 3) and load_class_info(small).ignore_label == 11


def test_the_verdicts_hold_the_issues_targets():
    results = StreamingResults({"frames": 8, "size": [256, 320], "arch": "segnet-basic", "alpha": 0.25,
                                "batch_size": 4, "speed_frames": 32},
                               [RssRow("train", "stream", 8, 1000, 1), RssRow("train", "stream", 64, 1150, 1),
                                RssRow("evaluate", "stream", 8, 700, 1), RssRow("evaluate", "stream", 64, 900, 1)],
                               {"memory": 2.0, "stream": 1.7})
    assert results.ratio("train", "stream") == pytest.approx(1.15)
    table = results.to_markdown()
    assert "| train | stream | 1000 MiB | 1150 MiB | 1.15× | ≤ 1.2× met |" in table
    assert "1.29× | ≤ 1.2× MISSED" in table and "0.85× (goal ≥ 0.9×: MISSED)" in table
    assert results.to_json()["stream_speed_ratio"] == pytest.approx(0.85)
