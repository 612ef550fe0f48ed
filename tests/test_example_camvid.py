"""examples/camvid.sh, the CamVid walk-through a user runs, end to end on the real 16-frame CamVid sample.

One short epoch: the point is that every step (train, evaluate, calibrate with the model's size, convert,
score the int8 artifacts beside Keras, a sequence as a video, run_camera, profile) runs on the authors'
layout and leaves what it says it leaves; the recipe's accuracy is measured in docs/training.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2

from tests.conftest import REPO


def test_the_camvid_example_runs_end_to_end_on_the_real_sample(tmp_path, camvid_sample):
    data = camvid_sample
    out = tmp_path / "camvid"
    env = {**os.environ, "DATA": str(data), "OUT": str(out), "EPOCHS": "1", "ALPHA": "0.25", "SIZE": "64x96",
           "CALIB_COUNT": "8", "FORMATS": "tflite-int8 ort-int8", "PYTHON": sys.executable, "THREADS": "1"}
    result = subprocess.run(["bash", str(REPO / "examples" / "camvid.sh")], capture_output=True, text=True, env=env,
                            timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (out / "train" / "best.h5").is_file()
    keras = json.loads((out / "evaluate_keras.json").read_text())
    assert keras["split"] == "val" and keras["frames"] == 4 and keras["baseline"]["mean_iou"] >= 0
    from segnet_edge.calibration.representative import load_calibration_set

    assert load_calibration_set(out / "calib.npz").size == (64, 96), "calibrate takes the model's input size"
    report = json.loads((out / "export" / "report.json").read_text())
    built = {a["format"] for a in report["artifacts"] if a["file"]}
    assert built == {"tflite-int8", "ort-int8"} and report["parity_frames"]["frames"] == 4
    scored = json.loads((out / "evaluate_int8.json").read_text())["reports"]
    assert [r["model"].rsplit("/", 1)[-1] for r in scored] == ["best.h5", "model_int8.tflite", "model_ort_int8.onnx"]
    video = cv2.VideoCapture(str(out / "sequence.avi"))
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
    video.release()
    assert frames >= 1
    camera = json.loads((out / "camera" / "profile.json").read_text())["models"][0]
    assert camera["frames"] + camera["warmup_frames"] == frames, "every frame went through the board's runtime"
    assert camera["ended_by"] == "end of source"
    annotated = cv2.VideoCapture(str(out / "camera" / "annotated.avi"))
    assert annotated.isOpened() and int(annotated.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
    annotated.release()
    assert list((out / "profile").glob("*.md")), "profile writes its report"
