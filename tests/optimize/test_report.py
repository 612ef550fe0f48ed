"""The measuring tools: N:M pattern check, gzip sizes, config checks (numpy only, fast)."""

from __future__ import annotations

import gzip
import re

import numpy as np
import pytest

from segnet_edge.device.errors import UsageError
from segnet_edge.optimize.config import PruneConfig, QATConfig, parse_structured
from segnet_edge.optimize.report import file_size, m_by_n_violations


def _two_of_four(shape, seed=0) -> np.ndarray:
    """A (kh, kw, c_in, c_out) kernel with exactly 2 non-zeros in every 4 input channels."""
    rng = np.random.default_rng(seed)
    kernel = rng.normal(size=shape).astype(np.float32)
    kh, kw, c_in, c_out = shape
    for y in range(kh):
        for x in range(kw):
            for o in range(c_out):
                for start in range(0, c_in, 4):
                    group = np.arange(start, min(start + 4, c_in))
                    drop = rng.choice(group, size=max(0, len(group) - 2), replace=False)
                    kernel[y, x, drop, o] = 0.0
    return kernel


def test_two_of_four_kernels_pass_and_one_extra_non_zero_fails():
    kernel = _two_of_four((3, 3, 16, 8))
    assert m_by_n_violations(kernel, 2, 4) == 0
    assert (kernel == 0).mean() == pytest.approx(0.5)
    broken = kernel.copy()
    y, x, o = 1, 2, 5
    zero = np.flatnonzero(broken[y, x, 4:8, o] == 0)[0] + 4  # the second group of input channels
    broken[y, x, zero, o] = 0.3
    assert m_by_n_violations(broken, 2, 4) == 1


def test_groups_run_along_input_channels_not_output_channels():
    """2:4 along c_out but not along c_in must fail: the sparse tensor cores need it along c_in."""
    kernel = np.moveaxis(_two_of_four((1, 1, 8, 8), seed=1), 2, 3).copy()  # pattern now along c_out
    along_out = np.moveaxis(kernel, 3, 2)
    assert m_by_n_violations(along_out, 2, 4) == 0
    assert m_by_n_violations(kernel, 2, 4) > 0


def test_a_short_last_group_and_dense_kernels():
    kernel = _two_of_four((3, 3, 3, 4))  # c_in = 3: one group of 3 with at most 2 non-zeros
    assert m_by_n_violations(kernel, 2, 4) == 0
    dense = np.ones((3, 3, 8, 4), np.float32)
    assert m_by_n_violations(dense, 2, 4) == 3 * 3 * 4 * 2
    assert m_by_n_violations(np.ones((8, 3), np.float32), 2, 4) == 3 * 2  # Dense kernel (c_in, c_out)


def test_gzip_size_matches_gzip(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.concatenate([np.zeros(50_000, np.float32), np.random.default_rng(0).normal(size=50_000)]).tobytes()
    path.write_bytes(data)
    size = file_size(path)
    assert size.raw == len(data)
    assert abs(size.gzip - len(gzip.compress(data, 9))) < 64
    assert size.gzip < size.raw * 0.8


@pytest.mark.parametrize("text, expected", [("2:4", (2, 4)), (" 1 : 4 ", (1, 4)), ("4:8", (4, 8))])
def test_structured_values(text, expected):
    assert parse_structured(text) == expected


@pytest.mark.parametrize("text", ["4:2", "2:2", "0:4", "2-4", "two:four", "", "2:4:8"])
def test_bad_structured_values(text):
    with pytest.raises(UsageError):
        parse_structured(text)


def test_config_checks(tmp_path):
    data = str(tmp_path)
    folder = tmp_path / "looks_like.h5"
    folder.mkdir()
    assert PruneConfig(model="m.h5", data=data, out="o.h5").target_sparsity == 0.5
    assert PruneConfig(model="m.h5", data=data, out="o.h5", structured="2:4").m_by_n == (2, 4)
    assert PruneConfig(model="m.h5", data=data, out="o.h5", structured="1:4").m_by_n == (3, 4)  # tfmot counts zeros
    assert PruneConfig(model="m.h5", data=data, out="o.h5", structured="1:4").target_sparsity == 0.75
    PruneConfig(model="m.h5", data=data, out="o.h5", sparsity=0.9).validate()
    QATConfig(model="m.h5", data=data, out="o.h5").validate()
    cases = [
        (PruneConfig(model="m.h5", data=data, out="o.h5", sparsity=1.0), "--sparsity"),
        (PruneConfig(model="m.h5", data=data, out="o.h5", sparsity=0), "--sparsity"),
        (PruneConfig(model="m.h5", data=data, out="o.onnx"), ".h5 or .keras"),
        (PruneConfig(model="m.h5", data=data, out="o.h5", epochs=0), "--epochs"),
        (PruneConfig(model="m.h5", data=str(tmp_path / "none"), out="o.h5"), "no such dataset"),
        (QATConfig(model="m.h5", data=data, out="o.h5", preserve_sparsity="maybe"), "--preserve-sparsity"),
        (QATConfig(model="m.h5", data=data, out="o.h5", unpool_mode="scatter"), "--unpool-mode"),
        (QATConfig(model="m.h5", data=data, out=str(folder)), "is a folder"),
        (QATConfig(model="m.h5", data=data, out="qat.keras"), ".h5 only"),
    ]
    for config, needle in cases:
        with pytest.raises(UsageError, match=re.escape(needle)):
            config.validate()


@pytest.mark.parametrize("total_steps", [1, 2, 3, 4, 5, 9, 40, 1000])
def test_the_schedule_reaches_the_target_within_the_steps_tfmot_runs(total_steps):
    """tfmot's wrapper sees steps 1..N (it increments before it prunes); the last mask update must hit the target."""
    from segnet_edge.optimize.prune import make_schedule

    schedule = make_schedule(0.5, total_steps)
    updates = []
    for step in range(1, total_steps + 1):
        should_prune, sparsity = schedule(step)
        if bool(should_prune):
            updates.append((step, float(sparsity)))
    assert updates, "no mask update at all"
    assert updates[-1][1] == pytest.approx(0.5)
    if total_steps >= 4:
        assert updates[-1][0] < total_steps, "leave steps to fine-tune at the final mask"
        assert len(updates) > 1, "a ramp, not one shot"
