"""Streamed input: frames read, checked and resized inside tf.data give the batches, the class weights, the
model and the scores an in-memory split gives, with every bad-sample check intact."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import segnet_edge
from segnet_edge.data.layout import find_samples, load_class_info
from segnet_edge.data.loader import StreamedSplit, choose_pipeline, load_samples, scan_samples
from segnet_edge.device.errors import DataError
from tests.conftest import assert_usage_error, run_cli

SMALL = dict(arch="segnet-basic", alpha=0.125, input_size=(32, 48), batch_size=4, optimizer="adam", lr=1e-3,
             epochs=1, augment=False, verbose=0)


@pytest.fixture(scope="module")
def trained_both_ways(tmp_path_factory, camvid_sample):
    from segnet_edge.train import TrainConfig, train

    runs = {}
    for pipeline in ("memory", "stream"):
        out = tmp_path_factory.mktemp(pipeline)
        runs[pipeline] = out, train(TrainConfig(data=str(camvid_sample), out=str(out), input_pipeline=pipeline,
                                                **SMALL))
    return runs


def test_auto_holds_small_splits_in_memory_and_streams_large_ones():
    assert choose_pipeline(367, (360, 480))[0] == "memory"  # CamVid's train split: 254 MB decoded
    pipeline, why = choose_pipeline(2975, (512, 1024))  # Cityscapes-size
    assert pipeline == "stream" and "over the 1024 MiB" in why
    assert choose_pipeline(10, (32, 48), "stream")[0] == "stream"
    with pytest.raises(DataError, match="--input-pipeline must be one of"):
        choose_pipeline(10, (32, 48), "disk")


def test_streamed_batches_and_class_weights_are_the_in_memory_ones(camvid_sample):
    from segnet_edge.data.pipeline import split_dataset
    from segnet_edge.device.metadata import Normalization
    from segnet_edge.train import prepare_data

    memory = prepare_data(str(camvid_sample), (32, 48), input_pipeline="memory", verbose=0)
    stream = prepare_data(str(camvid_sample), (32, 48), input_pipeline="stream", verbose=0)
    assert isinstance(stream.train, StreamedSplit) and stream.pipeline == "stream" and memory.pipeline == "memory"
    np.testing.assert_array_equal(memory.class_weights, stream.class_weights)  # counted in the checking pass
    pairs = zip(split_dataset(memory.train, Normalization(), 5, shuffle=True, seed=7),
                split_dataset(stream.train, Normalization(), 5, shuffle=True, seed=7), strict=True)
    for (x_memory, y_memory), (x_stream, y_stream) in pairs:  # the same order, the same bits
        np.testing.assert_array_equal(x_memory.numpy(), x_stream.numpy())
        np.testing.assert_array_equal(y_memory.numpy(), y_stream.numpy())
    # a worker's shard: every other frame, none twice
    for split in (stream.train, memory.train):
        shard = [y.numpy() for _, y in split_dataset(split, Normalization(), 1, shard=(2, 1))]
        np.testing.assert_array_equal(np.concatenate(shard), memory.train.labels[1::2])


def test_a_model_trained_streamed_equals_one_trained_in_memory(trained_both_ways):
    (memory_out, memory), (stream_out, stream) = trained_both_ways["memory"], trained_both_ways["stream"]
    assert memory.class_weights == stream.class_weights and memory.best_miou == stream.best_miou
    for a, b in zip(segnet_edge.load_model(memory_out / "last.h5").get_weights(),
                    segnet_edge.load_model(stream_out / "last.h5").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_streamed_evaluation_scores_as_in_memory_and_skips_bad_frames(trained_both_ways, camvid_copy):
    from segnet_edge.evaluate import EvaluateConfig, evaluate

    model = str(trained_both_ways["stream"][0] / "best.h5")
    config = dict(model=model, data=str(camvid_copy), split="val", batch_size=3, colour_baseline=True)
    memory = evaluate(EvaluateConfig(**config, input_pipeline="memory"))
    stream = evaluate(EvaluateConfig(**config, input_pipeline="stream"))
    assert memory.frames == stream.frames == 4 and memory.confusion == stream.confusion
    assert memory.scores == stream.scores and memory.baseline == stream.baseline
    (camvid_copy / "val" / "0016E5_07959.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="0016E5_07959.png: unreadable image"):
        evaluate(EvaluateConfig(**config, input_pipeline="stream"))
    skipped = evaluate(EvaluateConfig(**config, input_pipeline="stream", on_bad_sample="skip"))
    assert skipped.frames == 3 and len(skipped.skipped) == 1 and "0016E5_07959" in skipped.skipped[0]


def _break(camvid_copy, kind: str):
    """Spoil one validation sample; returns the file the error must name."""
    if kind == "unreadable image":
        path = camvid_copy / "val" / "0016E5_07959.png"
        path.write_bytes(b"\x89PNG broken")
    elif kind == "wrong-size label":
        path = camvid_copy / "valannot" / "0016E5_08009.png"
        cv2.imwrite(str(path), np.zeros((100, 100), np.uint8))
    else:
        path = camvid_copy / "valannot" / "0016E5_08009.png"
        label = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        label[0, 0] = 40
        cv2.imwrite(str(path), label)
    return path


@pytest.mark.parametrize("kind", ["unreadable image", "wrong-size label", "label values out of range"])
def test_every_bad_sample_check_holds_when_streaming(camvid_copy, kind):
    blamed = _break(camvid_copy, kind)
    info = load_class_info(camvid_copy)
    samples = find_samples(camvid_copy, "val")
    counted = []
    with pytest.raises(DataError, match=blamed.name) as failed:
        scan_samples(samples, (32, 48), info, "fail")
    assert "\n" not in str(failed.value)
    split = scan_samples(samples, (32, 48), info, "skip", each_label=counted.append)
    assert len(split) == 3 and len(counted) == 3 and len(split.skipped) == 1 and blamed.name in split.skipped[0]
    with pytest.raises(DataError, match=blamed.name):  # evaluation's one pass checks as it reads
        list(StreamedSplit(samples, (32, 48), info).batches(2))
    loaded = load_samples(samples, (32, 48), info, "skip")  # the in-memory path skips the same sample
    assert loaded.skipped == split.skipped


def test_streamed_training_stops_on_a_bad_label_with_one_line(camvid_copy, tmp_path):
    _break(camvid_copy, "label values out of range")
    result = run_cli("train", "--data", camvid_copy, "--out", tmp_path / "o", "--input-size", "32x48",
                     "--input-pipeline", "stream", "--arch", "segnet-basic")
    assert_usage_error(result, "0016E5_08009.png", "label values [40]")
    assert not (tmp_path / "o" / "best.h5").exists()
