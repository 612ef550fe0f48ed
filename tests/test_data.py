"""Dataset layouts, label conventions and bad input, on the real CamVid sample and on folders."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from segnet_edge.class_weights import class_frequencies, median_frequency_weights
from segnet_edge.data.layout import find_samples, load_class_info, read_list_file
from segnet_edge.data.loader import load_split
from segnet_edge.device.errors import DataError


def test_camvid_lists_resolve_absolute_segnet_paths_against_the_list_folder(camvid_sample):
    train = find_samples(camvid_sample, "train")
    val = find_samples(camvid_sample, "val")
    assert len(train) == 12 and len(val) == 4
    for sample in train + val:
        assert sample.image.is_file() and sample.label.is_file()
        assert sample.image.parent.name in ("train", "val")
        assert sample.label.parent.name in ("trainannot", "valannot")
        assert sample.image.name == sample.label.name  # same name, different folder: both resolved right


def test_a_copy_anywhere_on_disk_still_loads(camvid_copy):
    assert len(find_samples(camvid_copy, "train")) == 12
    assert len(find_samples(camvid_copy / "val.txt")) == 4  # a list file given directly


def test_camvid_conventions_void_is_11(camvid_sample):
    info = load_class_info(camvid_sample)
    assert info.num_classes == 11 and info.ignore_label == 11 and info.names[3] == "Road"
    split = load_split(camvid_sample, "val", (90, 120), info)
    assert split.images.shape == (4, 90, 120, 3) and split.images.dtype == np.uint8
    assert split.labels.shape == (4, 90, 120)
    values = set(np.unique(split.labels).tolist())
    assert 11 in values and values <= set(range(12))


def test_default_ignore_label_rejects_camvid_void_with_a_hint(camvid_sample):
    info = load_class_info(camvid_sample, ignore_label=255)
    with pytest.raises(DataError, match=r"label values \[11\].*--ignore-label 11"):
        load_split(camvid_sample, "val", (45, 60), info)


def test_missing_files_name_both_places_tried(camvid_copy):
    (camvid_copy / "train" / "0001TP_006690.png").unlink()
    with pytest.raises(DataError, match=r"train\.txt:1: /SegNet/CamVid/train/0001TP_006690\.png does not exist"):
        find_samples(camvid_copy, "train")
    with pytest.raises(DataError, match="no 'test' split"):
        find_samples(camvid_copy, "test")
    with pytest.raises(DataError, match="no such dataset"):
        find_samples(camvid_copy / "nowhere", "train")
    (camvid_copy / "empty.txt").write_text("\n")
    with pytest.raises(DataError, match="empty"):
        read_list_file(camvid_copy / "empty.txt")


def test_bad_samples_fail_by_name_or_are_skipped_and_counted(camvid_copy):
    info = load_class_info(camvid_copy)
    broken = camvid_copy / "val" / "0016E5_07959.png"
    broken.write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="0016E5_07959.png: unreadable image"):
        load_split(camvid_copy, "val", (45, 60), info)
    split = load_split(camvid_copy, "val", (45, 60), info, on_bad_sample="skip")
    assert len(split) == 3 and len(split.skipped) == 1 and "0016E5_07959" in split.skipped[0]


def test_label_of_the_wrong_size_is_named(camvid_copy):
    info = load_class_info(camvid_copy)
    label = camvid_copy / "valannot" / "0016E5_08009.png"
    cv2.imwrite(str(label), np.zeros((100, 100), np.uint8))
    with pytest.raises(DataError, match=r"0016E5_08009.png: label is 100x100 but its image is 480x360"):
        load_split(camvid_copy, "val", (45, 60), info)


def _write_folder_dataset(root, count=3, size=(20, 30), value=1):
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(count):
        cv2.imwrite(str(root / "images" / f"f{i}.jpg"), np.full((*size, 3), 40 * i, np.uint8))
        cv2.imwrite(str(root / "labels" / f"f{i}.png"), np.full(size, value, np.uint8))


def test_images_and_labels_folders_pair_by_name(tmp_path):
    _write_folder_dataset(tmp_path / "ds")
    samples = find_samples(tmp_path / "ds", "train")
    assert [s.image.stem for s in samples] == ["f0", "f1", "f2"]
    assert all(s.label.suffix == ".png" for s in samples)
    (tmp_path / "ds" / "labels" / "f1.png").unlink()
    with pytest.raises(DataError, match="f1.jpg: no label with the same name"):
        find_samples(tmp_path / "ds", "train")


def test_label_values_beyond_the_classes_are_refused(tmp_path):
    _write_folder_dataset(tmp_path / "ds", value=7)
    info = load_class_info(tmp_path / "ds", num_classes=3)
    assert info.ignore_label == 255
    with pytest.raises(DataError, match=r"f0.png: label values \[7\] are not classes 0..2"):
        load_split(tmp_path / "ds", "train", (16, 16), info)


def test_classes_file_is_read_and_checked(tmp_path):
    (tmp_path / "classes.json").write_text('{"class_names": ["a", "b"], "palette": [[1, 2, 3]]}')
    with pytest.raises(DataError, match="1 palette colours for 2 classes"):
        load_class_info(tmp_path)
    (tmp_path / "classes.json").write_text('{"class_names": ["a", "b"], "ignore_label": 9}')
    info = load_class_info(tmp_path)
    assert info.names == ("a", "b") and info.ignore_label == 9 and len(info.palette) == 2
    assert load_class_info(tmp_path, ignore_label=4).ignore_label == 4


def test_median_frequency_weights_by_hand():
    labels = np.array([
        [[0, 0, 0, 1]],  # image A: 4 px; class 0 x3, class 1 x1
        [[0, 2, 2, 9]],  # image B: 3 valid px (9 is void); class 0 x1, class 2 x2
    ], dtype=np.uint8)
    freq = class_frequencies(labels, 3, ignore_label=9)
    np.testing.assert_allclose(freq, [4 / 7, 1 / 4, 2 / 3])
    weights = median_frequency_weights(labels, 3, ignore_label=9)
    np.testing.assert_allclose(weights, np.median(freq) / freq, rtol=1e-6)
    assert median_frequency_weights(labels, 4, ignore_label=9)[3] == 0  # absent class


def test_camvid_weights_favour_rare_classes(camvid_sample):
    info = load_class_info(camvid_sample)
    split = load_split(camvid_sample, "train", (90, 120), info)
    weights = median_frequency_weights(split.labels, 11, 11)
    road, sky, pole = weights[3], weights[0], weights[2]
    assert pole > 5 * road and pole > 5 * sky


def test_pipeline_normalises_and_keeps_labels_aligned_under_augmentation():
    from segnet_edge._tf import tf
    from segnet_edge.data.pipeline import make_dataset
    from segnet_edge.device.metadata import Normalization
    from segnet_edge.device.preprocess import normalize

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=(6, 24, 32)).astype(np.uint8)
    labels = np.repeat(np.repeat(labels[:, ::4, ::4], 4, 1), 4, 2)  # 4x4 blocks survive resizing
    images = np.stack([labels * 60] * 3, axis=-1).astype(np.uint8)  # colour encodes the label
    norm = Normalization()
    plain = next(iter(make_dataset(images, labels, norm, batch_size=6)))
    np.testing.assert_allclose(plain[0].numpy(), normalize(images, norm), rtol=1e-6)
    tf.random.set_seed(0)
    agree = []
    for x, y in make_dataset(images, labels, norm, batch_size=3, augment=True, shuffle=True):
        assert x.shape == (3, 24, 32, 3) and y.dtype == tf.uint8
        # undo the normalisation, recover the label from the colour
        raw = x.numpy()[..., 0] * norm.std[0] + norm.mean[0]
        agree.append(np.mean(np.round(raw / 60) == y.numpy()))
    assert np.mean(agree) > 0.9
