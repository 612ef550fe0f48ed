"""Fixtures for pruning / QAT tests: one tiny synthetic dataset and tiny models, made once per session.

Each TensorFlow fine-tune costs seconds of graph tracing on a shared 2-core box, so
the expensive products (a pruned model, a 2:4 model, a QAT model) are made once and
read by several tests; the tests that need training only read them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

#: The console script users run (`pip install -e .` puts it beside the interpreter).
SEGNET_EDGE = Path(sys.executable).parent / "segnet-edge"
SIZE = (32, 48)


def run_segnet_edge(*args, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [str(SEGNET_EDGE)] if SEGNET_EDGE.exists() else [sys.executable, "-m", "segnet_edge.cli"]
    return subprocess.run([*command, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "-1")})


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, (result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.fixture(scope="session")
def opt_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("optimize")


@pytest.fixture(scope="session")
def synth_data(opt_dir) -> Path:
    from segnet_edge.data.synth import SynthConfig, write_synth_dataset

    out = opt_dir / "synth"
    write_synth_dataset(out, SynthConfig(count=6, size=SIZE, seed=3, val_count=2, test_count=1), progress=False)
    return out


def _save_tiny(opt_dir: Path, synth_data: Path, arch: str) -> Path:
    """An untrained tiny model with real metadata: pruning and QAT do not care how good it is."""
    from segnet_edge._tf import keras
    from segnet_edge.data.layout import load_class_info
    from segnet_edge.model_io import save_model
    from segnet_edge.models import ModelConfig, build_model
    from segnet_edge.train import metadata_for

    keras.utils.set_random_seed(0)
    info = load_class_info(synth_data)
    config = ModelConfig(arch, SIZE, info.num_classes, 0.125)
    path = opt_dir / f"{arch}.h5"
    save_model(build_model(config), path, metadata_for(config, info))
    return path


@pytest.fixture(scope="session")
def basic_model(opt_dir, synth_data) -> Path:
    return _save_tiny(opt_dir, synth_data, "segnet-basic")


@pytest.fixture(scope="session")
def segnet_model(opt_dir, synth_data) -> Path:
    return _save_tiny(opt_dir, synth_data, "segnet")


@pytest.fixture(scope="session")
def pruned_basic(opt_dir, synth_data, basic_model):
    """(report, path): SegNet-Basic pruned to 50% in-process, 2 epochs x 2 steps (the cubic ramp runs)."""
    from segnet_edge.optimize.config import PruneConfig
    from segnet_edge.optimize.prune import prune

    out = opt_dir / "basic_pruned.h5"
    report = prune(PruneConfig(model=str(basic_model), data=str(synth_data), out=str(out), sparsity=0.5, epochs=2,
                               batch_size=3, verbose=0))
    return report, out


@pytest.fixture(scope="session")
def pruned_24(opt_dir, synth_data, segnet_model):
    """(completed process, path): SegNet pruned 2:4 through the CLI, as a user runs it."""
    out = opt_dir / "segnet_24.h5"
    result = _ok(run_segnet_edge("prune", segnet_model, "--data", synth_data, "--structured", "2:4", "--epochs", 1,
                                 "--batch-size", 3, "--out", out, "--quiet"))
    return result, out


@pytest.fixture(scope="session")
def qat_basic(opt_dir, synth_data, pruned_basic):
    """(completed process, path, report json): prune-preserving QAT of the pruned model through the CLI."""
    _, pruned = pruned_basic
    out = opt_dir / "basic_qat.h5"
    result = _ok(run_segnet_edge("quantize", pruned, "--data", synth_data, "--qat", "--epochs", 1, "--batch-size", 3,
                                 "--out", out, "--quiet"))
    report = json.loads((opt_dir / "basic_qat.quantize.json").read_text())
    return result, out, report
