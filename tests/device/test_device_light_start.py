"""A `.tflite` run loads LiteRT and nothing it does not use: no ONNX Runtime, no plotting without a plot.

On a board with shared CPU/GPU memory every library loaded for nothing is resident for the whole run
(ONNX Runtime alone is ~26 MB), so the entry point is watched in a fresh process: every import of a
library the run must not need is recorded, and the report says when it happened.
"""

from __future__ import annotations

import json
import subprocess
import sys

from device_util import REPO, RUN_CAMERA

#: `python device/run_camera.py ARGS` with every import of a watched library recorded (and whether the first
#: frame had been inferred by then), printed as JSON on stderr at exit.
WATCH = r"""
import atexit, json, runpy, sys
WATCHED = ("onnxruntime", "onnx", "matplotlib", "tensorflow", "tensorrt", "pycuda")
seen, state = {}, {"frames": 0}
class _Watch:
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in WATCHED and top not in seen:
            seen[top] = state["frames"]
        return None
sys.meta_path.insert(0, _Watch())
def _counting(backend_cls):
    infer = backend_cls.infer
    def counted(self, x):
        state["frames"] += 1
        return infer(self, x)
    backend_cls.infer = counted
import segnet_edge.device.backends.base as base
_counting(base.Backend)
atexit.register(lambda: print("WATCHED " + json.dumps(seen), file=sys.stderr))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _watched(artifacts, tmp_path, *extra: str) -> dict[str, int]:
    out = tmp_path / "out"
    command = [sys.executable, "-c", WATCH, str(RUN_CAMERA), "-m", str(artifacts / "model_int8.tflite"),
               "--source", "synthetic", "--frames", "3", "--warmup", "1", "--out", str(out), *extra]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stderr.splitlines() if x.startswith("WATCHED "))
    return json.loads(line[len("WATCHED "):])


def test_tflite_run_without_plot_loads_no_onnxruntime_and_no_matplotlib(artifacts, tmp_path):
    assert _watched(artifacts, tmp_path, "--no-plot") == {}


def test_matplotlib_loads_only_to_write_the_plot_after_the_frames(artifacts, tmp_path):
    seen = _watched(artifacts, tmp_path)
    assert set(seen) == {"matplotlib"}, seen
    assert seen["matplotlib"] == 3  # imported after the last frame, when profile.png is written
