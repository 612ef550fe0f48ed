"""Building, storing and reusing the representative set from a real dataset, image folder and video."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segnet_edge.calibration import (
    CalibrationRecipe,
    build_calibration_set,
    load_calibration_set,
    load_or_build,
)
from segnet_edge.device.errors import DataError
from segnet_edge.device.metadata import Normalization
from segnet_edge.device.preprocess import preprocess, resize_frame
from tests.calibration.conftest import SIZE, camvid_frames


def recipe(source, **changes) -> CalibrationRecipe:
    return CalibrationRecipe(source=str(source), size=SIZE, **{"count": 8, "holdout": 4, **changes})


def test_from_the_camvid_dataset_with_held_out_labels(camvid_sample):
    calib = build_calibration_set(recipe(camvid_sample))
    assert calib.recipe.kind == "dataset" and calib.recipe.source == str(camvid_sample.resolve())
    assert calib.frames.shape == (8, *SIZE, 3) and calib.frames.dtype == np.uint8
    assert calib.holdout_frames.shape == (4, *SIZE, 3)
    assert not set(calib.names) & set(calib.holdout_names), "held-out frames must not calibrate"
    train = {p.name: p for p in camvid_frames(camvid_sample)[:12]}
    assert set(calib.names) | set(calib.holdout_names) <= set(train)
    # exactly the device's resize of the file on disk
    first = cv2.imread(str(train[calib.names[0]]))
    np.testing.assert_array_equal(calib.frames[0], resize_frame(first, SIZE))
    # CamVid labels (void = 11) come with the held-out frames
    assert calib.holdout_labels.shape == (4, *SIZE)
    assert set(np.unique(calib.holdout_labels)) <= set(range(12)) and 11 in np.unique(calib.holdout_labels)


def test_the_same_seed_picks_the_same_frames(camvid_sample):
    a, b = build_calibration_set(recipe(camvid_sample)), build_calibration_set(recipe(camvid_sample))
    assert a.names == b.names and np.array_equal(a.frames, b.frames)
    c = build_calibration_set(recipe(camvid_sample, seed=1))
    assert c.names != a.names
    val = build_calibration_set(recipe(camvid_sample, split="val", count=4, holdout=0))
    assert sorted(val.names) == sorted(p.name for p in camvid_frames(camvid_sample)[12:])


def test_from_an_image_folder(camvid_sample):
    calib = build_calibration_set(recipe(camvid_sample / "train", count=12, holdout=2))
    assert calib.recipe.kind == "folder" and len(calib) == 12
    assert len(calib.holdout_frames) == 0 and calib.holdout_labels is None  # nothing left to hold out


def test_from_a_video(camvid_video, camvid_sample):
    calib = build_calibration_set(recipe(camvid_video, count=10, holdout=3))
    assert calib.recipe.kind == "video" and len(calib) == 10 and len(calib.holdout_frames) == 3
    assert all(name.startswith("camvid.avi#") for name in calib.names)
    frames = camvid_frames(camvid_sample)
    for name, frame in zip(calib.names, calib.frames):
        original = resize_frame(cv2.imread(str(frames[int(name.split("#")[1])])), SIZE)
        assert np.abs(frame.astype(int) - original.astype(int)).mean() < 6, name  # MJPG is lossy, not shuffled
    again = build_calibration_set(recipe(camvid_video, count=10, holdout=3))
    assert again.names == calib.names and np.array_equal(again.frames, calib.frames)


def test_fewer_images_than_asked(camvid_sample):
    with pytest.raises(DataError, match=r"only 12 images, fewer than the 200 asked for; lower --count to 12"):
        build_calibration_set(recipe(camvid_sample, count=200))
    assert len(build_calibration_set(recipe(camvid_sample, count=200), allow_fewer=True)) == 12


def test_empty_missing_and_unreadable_sources(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        build_calibration_set(recipe(empty))
    with pytest.raises(DataError, match="no such file or folder"):
        build_calibration_set(recipe(tmp_path / "missing"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"a\.png: unreadable image"):
        build_calibration_set(recipe(broken, count=1, holdout=0))
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00" * 64)
    with pytest.raises(DataError, match="OpenCV cannot read this video"):
        build_calibration_set(recipe(video))
    with pytest.raises(DataError, match="one image is not a calibration set"):
        build_calibration_set(recipe(broken / "a.png"))


def test_on_bad_sample_skip_passes_over_unreadable_images_and_labels(camvid_copy, tmp_path):
    clean = build_calibration_set(recipe(camvid_copy))
    assert clean.skipped == []
    assert build_calibration_set(recipe(camvid_copy, on_bad_sample="skip")).names == clean.names  # same picks
    bad_image = camvid_copy / "train" / clean.names[2]
    bad_image.write_bytes(b"not a png")
    with pytest.raises(DataError, match=rf"{bad_image.name}: unreadable image; .*--on-bad-sample skip"):
        build_calibration_set(recipe(camvid_copy))
    calib = build_calibration_set(recipe(camvid_copy, on_bad_sample="skip"))
    assert len(calib) == 8 and bad_image.name not in calib.names + calib.holdout_names
    assert calib.skipped == [f"{bad_image}: unreadable image"]
    assert len(calib.holdout_frames) == 3  # 11 readable of 12: the held-out frames are the ones short
    # a held-out frame's broken label is passed over too, and the set keeps labels for all it holds out
    bad_label = camvid_copy / "trainannot" / calib.holdout_names[0]
    assert bad_label.is_file()
    bad_label.write_bytes(b"\x89PNG truncated")
    again = build_calibration_set(recipe(camvid_copy, on_bad_sample="skip"))
    assert len(again.skipped) == 2 and calib.holdout_names[0] not in again.holdout_names
    assert again.holdout_labels is not None and len(again.holdout_labels) == len(again.holdout_frames) == 2
    path = again.save(tmp_path / "calib.npz")
    assert load_calibration_set(path).skipped == again.skipped
    # labels are read for held-out frames only (calibration needs none): one image short of 12
    with pytest.raises(DataError, match=r"only 11 readable images \(1 skipped\), fewer than the 12 asked for"):
        build_calibration_set(recipe(camvid_copy, on_bad_sample="skip", count=12))
    with pytest.raises(DataError, match="unknown --on-bad-sample"):
        recipe(camvid_copy, on_bad_sample="ignore")


def test_save_load_and_reuse(tmp_path, camvid_sample):
    path = tmp_path / "calib.npz"
    first, reused = load_or_build(path, recipe(camvid_sample))
    assert not reused and path.is_file()
    loaded = load_calibration_set(path)
    assert loaded.recipe == first.recipe and loaded.names == first.names
    np.testing.assert_array_equal(loaded.frames, first.frames)
    np.testing.assert_array_equal(loaded.holdout_labels, first.holdout_labels)
    stamp = path.stat().st_mtime_ns
    again, reused = load_or_build(path, recipe(camvid_sample))
    assert reused and again.names == first.names and path.stat().st_mtime_ns == stamp
    other, reused = load_or_build(path, recipe(camvid_sample, seed=3))
    assert not reused and load_calibration_set(path).recipe.seed == 3
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match="not a segnet-edge calibration set"):
        load_calibration_set(tmp_path / "bad.npz")


def test_inputs_are_the_device_preprocessing(camvid_sample):
    calib = build_calibration_set(recipe(camvid_sample))
    norm = Normalization(channel_order="RGB", mean=(1.0, 2.0, 3.0), std=(2.0, 2.0, 2.0))
    inputs = list(calib.inputs(norm))
    assert len(inputs) == 8 and inputs[0].dtype == np.float32 and inputs[0].shape == (*SIZE, 3)
    np.testing.assert_array_equal(inputs[3], preprocess(calib.frames[3], SIZE, norm))
    batches = list(calib.batches(norm, 3))
    assert [b.shape[0] for b in batches] == [3, 3] and batches[1].flags.c_contiguous  # last partial batch dropped
    np.testing.assert_array_equal(batches[1][0], inputs[3])
    with pytest.raises(DataError, match="fewer than one batch of 9"):
        next(calib.batches(norm, 9))
    with pytest.raises(DataError, match=r"frames are 36x48 but the model takes 360x480"):
        calib.check_size((360, 480))
