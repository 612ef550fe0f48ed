"""Shared fixtures: the real CamVid sample, tiny models, a place for outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CAMVID_SAMPLE = REPO.parent / "shared" / "data" / "camvid-sample"
CLI = [sys.executable, "-m", "segnet_edge.cli"]


@pytest.fixture(scope="session")
def camvid_sample() -> Path:
    if not (CAMVID_SAMPLE / "train.txt").is_file():
        pytest.fail(f"the real CamVid sample is missing at {CAMVID_SAMPLE}; it ships in ../shared")
    return CAMVID_SAMPLE


@pytest.fixture
def camvid_copy(tmp_path, camvid_sample) -> Path:
    """A writable copy elsewhere on disk: list files keep their absolute /SegNet/... paths."""
    target = tmp_path / "camvid"
    shutil.copytree(camvid_sample, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `segnet-edge ARGS` in a fresh process, as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=full_env,
                          cwd=REPO)


def assert_usage_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit 2, no traceback, and exactly one line of error naming the problem (returned)."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def make_artifacts(out: Path, arch: str = "segnet") -> Path:
    """model_fp32.tflite, model_int8.tflite, model.onnx (+ no_metadata.tflite) from a tiny random `arch`, built
    by tests/device/make_artifacts.py in its own process (as on the board, the device tests' process never
    imports TensorFlow)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(REPO / "tests" / "device" / "make_artifacts.py"), str(out), arch],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    return out


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> Path:
    """The tiny SegNet's artifacts, once per session; tests/device runs on both architectures (its own fixture)."""
    return make_artifacts(tmp_path_factory.mktemp("artifacts"))


# `make test` runs on two pytest-xdist workers (`-n 2 --dist loadscope`), with the scope redefined here:
# a scope runs whole on one worker, so an expensive session or module fixture is built once. The convert
# tests share one trained model and one conversion, the calibration tests one video; the device,
# reliability, auto-select, budget and measure tests share `artifacts`; the optimize tests their pruned and QAT models;
# every other module is a scope of its own. (Not `--dist loadgroup` with xdist_group marks: with
# pytest 9.2, xdist 3.8 silently ignores the marks, pytest-xdist issue #1386.)
SHARED_FIXTURE_SCOPES = {"calibration": "calibration", "convert": "convert", "optimize": "optimize",
                         "device": "artifacts", "reliability": "artifacts", "test_bench_autoselect.py": "artifacts",
                         "test_bench_budget.py": "artifacts", "test_bench_measure.py": "artifacts"}


def fixture_scope_of(nodeid: str) -> str:
    """'tests/convert/test_x.py::test_y[1]' -> 'convert'; 'tests/test_data.py::test_z' -> 'tests/test_data.py'."""
    path = nodeid.split("::", 1)[0]
    parts = path.split("/")
    return SHARED_FIXTURE_SCOPES.get(parts[1], path) if parts[0] == "tests" and len(parts) > 1 else path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return fixture_scope_of(nodeid)

    return SharedFixtureScheduling(config, log)
