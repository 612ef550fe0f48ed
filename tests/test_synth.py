"""The synthetic street-scene dataset: deterministic, in the CamVid layout, and not solvable from colour alone."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from segnet_edge.data import synth
from segnet_edge.data.synth import (
    CLASS_NAMES,
    PALETTE,
    SynthConfig,
    render_scene,
    render_scene_detailed,
    scene_rng,
    write_synth_dataset,
)
from segnet_edge.device.cli_core import parse_size
from segnet_edge.device.errors import UsageError

SIZE = (96, 128)


@pytest.fixture(scope="module")
def scenes() -> list[synth.SceneRender]:
    return [render_scene_detailed(scene_rng(123, "train", i), SIZE) for i in range(20)]


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(tmp_path):
    config = SynthConfig(count=4, size=(48, 64), seed=7)
    write_synth_dataset(tmp_path / "a", config, progress=False)
    write_synth_dataset(tmp_path / "b", config, progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 10
    assert a == b

    write_synth_dataset(tmp_path / "c", SynthConfig(count=4, size=(48, 64), seed=8), progress=False)
    c = _files(tmp_path / "c")
    images = [k for k in a if k.startswith("train/")]
    assert all(a[k] != c[k] for k in images)


def test_split_counts_do_not_change_other_splits(tmp_path):
    write_synth_dataset(tmp_path / "a", SynthConfig(count=3, size=(32, 48), seed=1, val_count=1), progress=False)
    write_synth_dataset(tmp_path / "b", SynthConfig(count=3, size=(32, 48), seed=1, val_count=4, test_count=2),
                        progress=False)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    for key in a:
        if key.startswith(("train", "val/", "valannot/")):
            assert a[key] == b[key], key


def test_layout_matches_list_files_and_loader(tmp_path):
    out = tmp_path / "ds"
    summary = write_synth_dataset(out, SynthConfig(count=5, size=(40, 56), seed=3), progress=False)
    assert summary.counts == {"train": 5, "val": 1, "test": 1}
    assert json.loads((out / "classes.json").read_text()) == {
        "class_names": list(CLASS_NAMES), "palette": [list(c) for c in PALETTE], "ignore_label": 255,
    }
    for split, count in summary.counts.items():
        lines = (out / f"{split}.txt").read_text().splitlines()
        assert len(lines) == count
        listed_images, listed_labels = set(), set()
        for line in lines:
            image_rel, label_rel = line.split()
            assert image_rel.startswith(f"{split}/") and label_rel.startswith(f"{split}annot/")
            image = cv2.imread(str(out / image_rel), cv2.IMREAD_UNCHANGED)
            labels = cv2.imread(str(out / label_rel), cv2.IMREAD_UNCHANGED)
            assert image.shape == (40, 56, 3) and image.dtype == np.uint8
            assert labels.shape == (40, 56) and labels.dtype == np.uint8
            assert labels.max() < len(CLASS_NAMES)
            listed_images.add(image_rel)
            listed_labels.add(label_rel)
        assert {f"{split}/{p.name}" for p in (out / split).iterdir()} == listed_images
        assert {f"{split}annot/{p.name}" for p in (out / f"{split}annot").iterdir()} == listed_labels
    assert sum(summary.class_pixels) == 5 * 40 * 56
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left

    from segnet_edge.data.layout import find_samples, load_class_info

    assert len(find_samples(out, "train")) == 5
    assert load_class_info(out).names == CLASS_NAMES


def test_render_scene_shapes_and_labels(scenes):
    image, labels = render_scene(scene_rng(0, "val", 0), (33, 47))
    assert image.shape == (33, 47, 3) and image.dtype == np.uint8
    assert labels.shape == (33, 47) and labels.dtype == np.uint8
    for scene in scenes:
        assert scene.labels.max() < len(CLASS_NAMES)


def test_every_class_appears_across_twenty_scenes(scenes):
    counts = np.bincount(np.concatenate([s.labels.ravel() for s in scenes]), minlength=len(CLASS_NAMES))
    assert (counts[: len(CLASS_NAMES)] > 0).all(), dict(zip(CLASS_NAMES, counts))
    present = np.array([[np.any(s.labels == c) for c in range(len(CLASS_NAMES))] for s in scenes])
    assert present[:, synth.ROAD].all() and present[:, synth.SKY].mean() > 0.8
    assert present[:, synth.CAR].mean() > 0.5 and present[:, synth.PERSON].mean() > 0.3


def test_things_overlap_each_other_sometimes(scenes):
    partly_hidden = [int(np.sum((s.occluded_fraction() > 0.1) & (s.occluded_fraction() < 0.95))) for s in scenes]
    assert sum(partly_hidden) >= 40
    assert sum(n > 0 for n in partly_hidden) >= 10


def test_lighting_and_colours_vary_between_scenes(scenes):
    brightness = [s.image.mean() for s in scenes]
    assert np.std(brightness) > 15
    road = np.array([s.image[s.labels == synth.ROAD].mean(axis=0) for s in scenes])
    assert road.std(axis=0).max() > 20  # the road is not one colour
    sky = [s.image[s.labels == synth.SKY].mean(axis=0) for s in scenes if np.any(s.labels == synth.SKY)]
    assert np.std(np.asarray(sky), axis=0).max() > 12


def _colour_bins(image: np.ndarray) -> np.ndarray:
    q = (image >> 5).astype(np.int64)  # 8 levels per channel
    return (q[..., 0] * 64 + q[..., 1] * 8 + q[..., 2]).ravel()


def test_colour_alone_does_not_solve_it(scenes):
    """A per-pixel colour lookup (majority class per 512 BGR bins) fit on 30 scenes scores poorly on 10 others."""
    train = [render_scene(scene_rng(5, "train", i), SIZE) for i in range(10)] + [(s.image, s.labels) for s in scenes]
    test = [render_scene(scene_rng(5, "test", i), SIZE) for i in range(10)]
    votes = np.zeros((512, len(CLASS_NAMES)), np.int64)
    for image, labels in train:
        np.add.at(votes, (_colour_bins(image), labels.ravel()), 1)
    table = votes.argmax(axis=1)
    table[votes.sum(axis=1) == 0] = votes.sum(axis=0).argmax()
    correct = sum(int(np.sum(table[_colour_bins(image)] == labels.ravel())) for image, labels in test)
    accuracy = correct / sum(labels.size for _, labels in test)
    assert accuracy < 0.6, accuracy


def test_overwrite_rules(tmp_path):
    out = tmp_path / "ds"
    write_synth_dataset(out, SynthConfig(count=1, size=(32, 32), seed=0), progress=False)
    with pytest.raises(UsageError, match="--overwrite"):
        write_synth_dataset(out, SynthConfig(count=1, size=(32, 32), seed=1), progress=False)
    write_synth_dataset(out, SynthConfig(count=2, size=(32, 32), seed=1, val_count=0), overwrite=True,
                        progress=False)
    assert len((out / "train.txt").read_text().splitlines()) == 2
    assert not (out / "val.txt").exists() and not (out / "val").exists()

    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="does not look like a dataset"):
        write_synth_dataset(other, SynthConfig(count=1, size=(32, 32)), overwrite=True, progress=False)
    assert (other / "notes.txt").read_text() == "keep me"

    empty = tmp_path / "empty"
    empty.mkdir()
    write_synth_dataset(empty, SynthConfig(count=1, size=(32, 32)), progress=False)
    assert (empty / "train.txt").is_file()


def test_failure_leaves_no_partial_output(tmp_path, monkeypatch):
    out = tmp_path / "ds"
    write_synth_dataset(out, SynthConfig(count=1, size=(32, 32), seed=0), progress=False)
    before = _files(out)
    calls = []

    def broken(rng, size):
        calls.append(1)
        if len(calls) > 2:
            raise RuntimeError("disk on fire")
        return render_scene(rng, size)

    monkeypatch.setattr("segnet_edge.data.synth.writer.render_scene", broken)  # the writer renders each scene
    with pytest.raises(RuntimeError):
        write_synth_dataset(out, SynthConfig(count=4, size=(32, 32), seed=9), overwrite=True, progress=False)
    assert _files(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "--count"),
        ({"count": 2, "size": (31, 64)}, "32x32"),
        ({"count": 2, "seed": -1}, "--seed"),
        ({"count": 2, "val_count": -1}, "--val-count"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(UsageError, match=message):
        SynthConfig(**kwargs)


def test_default_split_counts():
    assert SynthConfig(count=1).split_counts() == {"train": 1, "val": 1, "test": 1}
    assert SynthConfig(count=40, test_count=0).split_counts() == {"train": 40, "val": 10, "test": 0}


def test_parse_size():
    assert parse_size("96x128") == (96, 128)
    assert parse_size(" 360X480 ") == (360, 480)
    for bad in ("96", "96x", "x128", "96x128x3", "-96x128", "0x128", "ninety"):
        with pytest.raises(argparse.ArgumentTypeError, match="e.g. 96x128"):
            parse_size(bad)


def _cli() -> Path:
    candidate = Path(sys.executable).parent / "segnet-edge"
    if candidate.exists():
        return candidate
    found = shutil.which("segnet-edge")
    if found is None:
        pytest.skip("segnet-edge is not installed in this environment")
    return Path(found)


def test_cli_writes_a_dataset(tmp_path):
    result = subprocess.run([str(_cli()), "synth", str(tmp_path / "ds"), "--count", "2", "--size", "32x48",
                             "--seed", "4", "--test-count", "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout
    assert len((tmp_path / "ds" / "test.txt").read_text().splitlines()) == 2


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "x").write_text("x")
    a_file = tmp_path / "file.png"
    a_file.write_bytes(b"x")
    cases = [
        ["--count", "0"],
        ["--size", "16x16"],
        ["--size", "big"],
        ["--seed", "-3"],
        ["--count", "many"],
    ]
    for extra in cases:
        result = subprocess.run([str(_cli()), "synth", str(tmp_path / "new"), *extra],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, (extra, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (extra, result.stderr)
        assert not (tmp_path / "new").exists()
    for target in (existing, a_file):
        result = subprocess.run([str(_cli()), "synth", str(target), "--count", "1"],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
