"""device/run_camera.py end to end, in fresh processes where TensorFlow cannot be imported."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from device_util import (
    CAMVID_SAMPLE,
    REPO,
    RUN_CAMERA,
    assert_one_line_error,
    moving_scene,
    no_tf_command,
    read_video,
    run_no_tf,
)

from segnet_edge.device.metadata import default_palette


def _ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "BLOCKED IMPORTS" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def _report(folder: Path) -> dict:
    for name in ("profile.json", "frames.csv", "profile.md", "profile.png"):
        assert (folder / name).is_file(), name
    return json.loads((folder / "profile.json").read_text())


def test_video_file_without_tensorflow_or_install(artifacts, scene_video, tmp_path):
    """The board's case: a checkout with no install and no TensorFlow, a real video written by OpenCV."""
    out = tmp_path / "out"
    result = run_no_tf("-m", artifacts / "model_fp32.tflite", "--source", scene_video, "--warmup", "2",
                       "--threads", "1", "--alpha", "0.5", "--no-legend", "--save-video", out / "annotated.avi",
                       "--save-masks", out / "masks", "--out", out / "report", no_install=True)
    _ok(result)
    assert "| model_fp32.tflite | litert | 16 |" in result.stdout

    annotated = read_video(out / "annotated.avi")
    assert len(annotated) == 18 and annotated[0].shape == (96, 128, 3)
    masks = sorted((out / "masks").glob("*.png"))
    assert [m.name for m in masks] == [f"{i:06d}.png" for i in range(18)]
    mask = cv2.imread(str(masks[5]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (96, 128) and mask.dtype == np.uint8 and mask.max() < 4

    # The overlay is the frame blended with the palette colour of the mask. MJPG subsamples colour, so
    # compare brightness (which JPEG keeps) below the FPS text.
    def gray(image: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)[40:].astype(np.float32)

    source = moving_scene(18)[5].astype(np.float32)
    bgr_palette = np.array([c[::-1] for c in default_palette(4)], np.float32)
    blended = gray(0.5 * source + 0.5 * bgr_palette[mask])
    got = gray(annotated[5])
    assert np.median(np.abs(got - blended)) < 4 and np.median(np.abs(got - gray(source))) > 8

    lines = [json.loads(line) for line in (out / "report" / "frames.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(18))
    assert lines[0]["warmup"] and not lines[2]["warmup"]
    assert lines[5]["mask"] == "000005.png" and set(lines[5]["classes"]) == {"sky", "building", "road", "car"}
    assert abs(sum(lines[5]["classes"].values()) - 1) < 1e-3 and 0 < lines[5]["confidence"] <= 1

    report = _report(out / "report")
    model = report["models"][0]
    assert model["backend"] == "litert" and model["frames"] == 16 and model["warmup_frames"] == 2
    assert model["ended_by"] == "end of source" and model["fps"] > 0 and model["skipped_frames"] == 0
    assert set(model["latency_ms"]) == {"capture", "preprocess", "inference", "postprocess", "render", "write", "total"}
    # the video, mask and JSON-lines writes are timed: a frame's outputs take time to write
    assert model["latency_ms"]["write"]["mean"] > 0
    assert "| write |" in (out / "report" / "profile.md").read_text()
    assert model["memory"]["rss_peak_mb"] > 0
    assert report["host"]["threads"] == 1 and "ai-edge-litert" in report["host"]["runtimes"]
    assert len((out / "report" / "frames.csv").read_text().splitlines()) == 19
    assert not list(out.rglob(".*tmp*")), "temporary files left behind"


def test_real_camvid_frames_as_video_int8(artifacts, camvid_video, tmp_path):
    video, count = camvid_video
    out = tmp_path / "camvid"
    result = run_no_tf("-m", artifacts / "model_int8.tflite", "--source", video, "--warmup", "1",
                       "--save-video", out / "annotated.mp4", "--save-masks", out / "masks", "--out", out)
    _ok(result)
    annotated = read_video(out / "annotated.mp4")
    assert len(annotated) == count and annotated[0].shape == (360, 480, 3)
    assert len(list((out / "masks").glob("*.png"))) == count
    assert cv2.imread(str(out / "masks" / "000000.png"), cv2.IMREAD_UNCHANGED).shape == (360, 480)
    model = _report(out)["models"][0]
    assert model["frames"] == count - 1 and model["runtime"].startswith("ai-edge-litert")


def test_image_folder_with_onnx_and_json_lines_on_stdout(artifacts, tmp_path):
    """The CamVid train folder as an image source, run the plain way: `python device/run_camera.py`."""
    out = tmp_path / "folder"
    result = subprocess.run([sys.executable, str(RUN_CAMERA), "-m", str(artifacts / "model.onnx"), "--source",
                             str(CAMVID_SAMPLE / "train"), "--warmup", "0", "--jsonl", "-", "--out", str(out),
                             "--no-plot"], capture_output=True, text=True, timeout=120, cwd=REPO)
    _ok(result)
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 12 and lines[-1]["frame"] == 11
    report = json.loads((out / "profile.json").read_text())
    assert report["models"][0]["backend"] == "onnxruntime" and report["models"][0]["frames"] == 12
    assert not (out / "profile.png").exists()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_ends_stream_and_writes_report(artifacts, tmp_path, sig):
    out = tmp_path / "sig"
    process = subprocess.Popen(no_tf_command("-m", artifacts / "model_int8.tflite", "--source", "synthetic",
                                             "--width", "160", "--height", "120", "--warmup", "2", "--out", out),
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        started = process.stderr.readline()  # "<model>: <runtime> on <source>" once streaming starts
        while started and "on synthetic" not in started:
            started = process.stderr.readline()
        time.sleep(1.0)
        process.send_signal(sig)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert f"stopped by {sig.name}" in stdout
    report = _report(out)
    assert report["interrupted"] == sig.name and report["models"][0]["frames"] > 0
    assert len((out / "frames.jsonl").read_text().splitlines()) == report["models"][0]["frames"] + 2


class _OneShotMjpeg(http.server.BaseHTTPRequestHandler):
    """Serves one MJPEG stream of FRAMES frames, then refuses every later connection (a camera that died)."""

    FRAMES = 30
    served = threading.Event()

    def do_GET(self):  # noqa: N802 - http.server's naming
        if self.served.is_set():
            self.send_error(503, "camera gone")
            return
        self.served.set()
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for frame in moving_scene(self.FRAMES):
            jpeg = cv2.imencode(".jpg", frame)[1].tobytes()
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg))
            self.wfile.write(jpeg + b"\r\n")
            time.sleep(0.01)

    def log_message(self, *args):
        pass


def test_stream_that_drops_is_retried_then_ends_with_report(artifacts, tmp_path):
    _OneShotMjpeg.served.clear()  # one stream per test: the class-level flag outlives the previous architecture
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OneShotMjpeg)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://viewer:hunter2@127.0.0.1:{server.server_address[1]}/stream.mjpg"
    out = tmp_path / "stream"
    try:
        result = run_no_tf("-m", artifacts / "model_fp32.tflite", "--source", url, "--warmup", "0",
                           "--retries", "2", "--retry-delay", "0.05", "--out", out, timeout=60)
    finally:
        server.shutdown()
        server.server_close()
    _ok(result)
    model = _report(out)["models"][0]
    assert model["ended_by"].endswith("lost (2 reconnect attempts failed)")
    assert 1 <= model["frames"] and model["frames"] + model["dropped_frames"] <= _OneShotMjpeg.FRAMES
    everything = result.stdout + result.stderr + "".join(p.read_text() for p in out.iterdir() if p.suffix != ".png")
    assert "hunter2" not in everything and "http://***@127.0.0.1" in model["source"]


def test_bad_input_is_one_line_exit_2(artifacts, scene_video, tmp_path):
    model = artifacts / "model_fp32.tflite"
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(model.read_bytes()[:4096])
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"\x00" * 16)
    cases = [
        (["-m", tmp_path / "missing.tflite", "--source", "synthetic"], "no such model file"),
        (["-m", weights, "--source", "synthetic"], "no backend for '.pt'"),
        (["-m", truncated, "--source", "synthetic"], "damaged artifact"),
        (["-m", artifacts / "no_metadata.tflite", "--source", "synthetic"], "carries no segnet-edge metadata"),
        (["-m", model, "--source", tmp_path / "nope.mp4"], "no such file, folder or camera"),
        (["-m", model, "--source", "57"], "camera 57 not found"),
        (["-m", model, "--source", "rtsp://admin:pw@127.0.0.1:9/live"], "rtsp://***@127.0.0.1:9/live"),
        (["-m", model, "--source", "synthetic", "--frames", "ten"], "--frames"),
        (["-m", model, "--source", "synthetic", "--alpha", "2"], "--alpha must be between 0 and 1"),
        (["-m", model, "--source", "synthetic", "--frames", "0"], "--frames must be at least 1"),
        (["-m", model, "--source", scene_video, "--save-video", tmp_path / "x.gif"], "--save-video"),
        (["-m", model, "--source", "synthetic", "--backend", "openvino"], "invalid choice: 'openvino'"),
        (["--source", "synthetic"], "-m/--model"),
    ]
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        cases.append((["-m", model, "--source", "synthetic", "--display"], "--display needs a desktop session"))
    for args, needle in cases:
        line = assert_one_line_error(run_no_tf(*args), needle)
        assert "pw@" not in line
    assert not (tmp_path / "x.gif").exists()


def test_missing_opencv_is_one_line(artifacts):
    """A board Python that cannot see the system cv2 gets told how to fix it, not a traceback."""
    blocker = ("import runpy, sys\n"
               "class B:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'cv2': raise ImportError('No module named cv2')\n"
               "sys.meta_path.insert(0, B())\n"
               "sys.argv = sys.argv[1:]\n"
               "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", blocker, str(RUN_CAMERA), "-m", str(artifacts / "model.onnx"),
                             "--source", "synthetic"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert_one_line_error(result, "OpenCV is not importable", "python3-opencv")
