"""Frame sources and the capture queue, on real files, folders and OpenCV."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from device_util import moving_scene, write_video

from segnet_edge.device.errors import DataError, UsageError
from segnet_edge.device.pipeline import FrameQueue
from segnet_edge.device.sources import (
    CaptureSettings,
    FolderSource,
    ReadStatus,
    SyntheticSource,
    VideoCaptureSource,
    csi_pipeline,
    open_source,
    opencv_has_gstreamer,
    redact,
)


def _drain(source) -> tuple[list[np.ndarray], int]:
    frames, skipped = [], 0
    source.open()
    try:
        while True:
            status, frame = source.read()
            if status is ReadStatus.OK:
                frames.append(frame)
            elif status is ReadStatus.SKIP:
                skipped += 1
            else:
                return frames, skipped
    finally:
        source.close()


def test_redact_hides_credentials_everywhere():
    assert redact("rtsp://admin:s3cret@10.0.0.2:554/stream") == "rtsp://***@10.0.0.2:554/stream"
    assert redact("cannot open http://user@cam/x and rtsp://a:b@h/") == "cannot open http://***@cam/x and rtsp://***@h/"
    assert redact("/data/video.mp4") == "/data/video.mp4"
    source = open_source("rtsp://admin:s3cret@127.0.0.1:9/stream")
    assert "s3cret" not in source.description and source.live
    with pytest.raises(DataError) as info:
        source.open()  # nothing listens on port 9
    assert "s3cret" not in str(info.value) and "rtsp://***@127.0.0.1:9/stream" in str(info.value)


def test_video_file_is_finite_and_complete(tmp_path):
    path = write_video(tmp_path / "clip.avi", moving_scene(7))
    source = open_source(str(path))
    assert isinstance(source, VideoCaptureSource) and not source.live
    frames, skipped = _drain(source)
    assert len(frames) == 7 and skipped == 0
    assert frames[0].shape == (96, 128, 3) and frames[0].dtype == np.uint8


def test_a_fresh_twin_opens_the_same_target_on_its_own_capture(tmp_path):
    """What the pipeline swaps in for a source stuck in a read: same file/URL and settings, unopened,
    and reading it leaves the stuck one alone (the board's GStreamer reads have no timeout)."""
    path = write_video(tmp_path / "clip.avi", moving_scene(5))
    settings = CaptureSettings(timeout_s=3.0)
    source = open_source(str(path), settings)
    source.open()
    try:
        assert source.read()[0] is ReadStatus.OK
        twin = source.fresh()
        assert isinstance(twin, VideoCaptureSource) and twin is not source
        assert (twin.target, twin.api, twin.live, twin.settings) == (source.target, source.api, False, settings)
        frames, _ = _drain(twin)  # from the start, on its own capture
        assert len(frames) == 5
        assert len(_drain_open(source)) == 4  # the original goes on where it was
    finally:
        source.close()
    assert FolderSource(tmp_path).fresh() is None  # only sources that can hang are renewed


def _drain_open(source) -> list[np.ndarray]:
    frames = []
    while (read := source.read())[0] is ReadStatus.OK:
        frames.append(read[1])
    return frames


def test_folder_skips_unreadable_images(tmp_path):
    for i, frame in enumerate(moving_scene(3)):
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), frame)
    (tmp_path / "01b.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_source(str(tmp_path))
    assert isinstance(source, FolderSource)
    frames, skipped = _drain(source)
    assert len(frames) == 3 and skipped == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no images"):
        open_source(str(empty)).open()


def test_synthetic_frames_move_and_repeat_deterministically():
    source = SyntheticSource(CaptureSettings(width=64, height=48))
    source.open()
    frames = [source.read()[1] for _ in range(SyntheticSource.RING + 1)]
    assert frames[0].shape == (48, 64, 3)
    assert not np.array_equal(frames[0], frames[1])
    assert np.array_equal(frames[0], frames[SyntheticSource.RING])
    with pytest.raises(UsageError, match="at least 8x8"):
        SyntheticSource(CaptureSettings(width=4, height=4)).open()


def test_missing_cameras_and_paths_fail_at_once(tmp_path):
    with pytest.raises(DataError, match=r"camera 57 not found \(no /dev/video57\)"):
        open_source("57")
    with pytest.raises(DataError, match="camera /dev/video57 not found"):
        open_source("/dev/video57")
    with pytest.raises(DataError, match="no such file, folder or camera"):
        open_source(str(tmp_path / "nothing.mp4"))
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"\x00" * 1000)
    with pytest.raises(DataError, match="not a video OpenCV can decode"):
        open_source(str(bogus)).open()
    with pytest.raises(UsageError, match="csi://0"):
        open_source("csi://front")


def test_csi_pipeline_and_gstreamer_check():
    pipeline = csi_pipeline(1, CaptureSettings(width=1920, height=1080, fps=60))
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1 !")
    assert "width=(int)1920, height=(int)1080, framerate=(fraction)60/1" in pipeline
    assert pipeline.endswith("appsink drop=true max-buffers=1 sync=false")
    if opencv_has_gstreamer():
        pytest.skip("this OpenCV has GStreamer: csi:// would try the real camera")
    with pytest.raises(UsageError) as info:
        open_source("csi://0")
    message = str(info.value)
    assert f"cv2 {cv2.__version__}" in message and "GStreamer" in message and "pip uninstall" in message


def test_frame_queue_keep_latest_drops_oldest():
    stop = threading.Event()
    queue = FrameQueue(2, keep_latest=True)
    for i in range(5):
        assert queue.put(i, stop)
    assert queue.dropped == 3
    queue.close()
    assert [queue.get(stop), queue.get(stop), queue.get(stop)] == [3, 4, None]


def test_frame_queue_for_files_blocks_instead_of_dropping():
    stop = threading.Event()
    queue = FrameQueue(2, keep_latest=False)
    got: list[int] = []

    def consume():
        while (item := queue.get(stop)) is not None:
            got.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    for i in range(50):
        assert queue.put(i, stop)
    queue.close()
    consumer.join(5)
    assert got == list(range(50)) and queue.dropped == 0
    full = FrameQueue(1, keep_latest=False)
    full.put("a", stop)
    stop.set()
    assert full.put("b", stop) is False  # a stopping run never blocks forever on a full queue
