"""The short form of `make reliability`, run by `make test`: same functions, smaller counts (plan.py).

Every test adds its counts to one session Tally; the table `make reliability`
prints is printed at the end of the pytest run as well, so the numbers behind a
green run are visible. SEGNET_EDGE_RELIABILITY=full runs the full counts here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rel_util import RAN, SESSION

from tools.reliability.kills import run_cli
from tools.reliability.plan import Plan


def pytest_terminal_summary(terminalreporter) -> None:
    if RAN:
        plan = Plan.from_env()
        terminalreporter.write_line("")
        terminalreporter.write_line(SESSION.table(f"segnet-edge reliability ({plan.name} form under pytest, "
                                                  f"seed {plan.seed}, {len(RAN)} checks)"))


@pytest.fixture(scope="session")
def plan() -> Plan:
    return Plan.from_env()


@pytest.fixture(scope="session")
def rel_data(tmp_path_factory, plan) -> Path:
    """A tiny synthetic dataset in the CamVid layout, written by `segnet-edge synth`."""
    out = tmp_path_factory.mktemp("rel") / "data"
    result = run_cli(["synth", out, "--count", plan.synth_count, "--size", plan.size_text, "--seed", plan.seed])
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="session")
def rel_model(tmp_path_factory, rel_data, plan) -> Path:
    """An untrained tiny SegNet (argmax pooling and all) saved as segnet-edge saves a checkpoint."""
    from segnet_edge._tf import keras
    from segnet_edge.data.layout import load_class_info
    from segnet_edge.model_io import save_model
    from segnet_edge.models import ModelConfig, build_model
    from segnet_edge.train import metadata_for

    keras.utils.set_random_seed(plan.seed)
    info = load_class_info(rel_data)
    config = ModelConfig("segnet", plan.input_size, info.num_classes, 0.0625)
    path = tmp_path_factory.mktemp("rel-model") / "best.h5"
    return save_model(build_model(config), path, metadata_for(config, info))


@pytest.fixture(scope="session")
def rel_calib(tmp_path_factory, rel_data, plan) -> Path:
    out = tmp_path_factory.mktemp("rel-calib") / "calib.npz"
    result = run_cli(["calibrate", "--source", rel_data, "--size", plan.size_text, "--count", plan.calib_count,
                      "--holdout", "2", "--out", out])
    assert result.returncode == 0, result.stderr
    return out
