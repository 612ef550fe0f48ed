"""bench/hardware.py: the CPU peak from cpuinfo text, and the Jetson projection (arithmetic only)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.hardware import (  # noqa: E402
    JETSON_MODULES,
    achieved_gops,
    cpu_peak,
    jetson_table,
    parse_cpuinfo,
    read_cpu_info,
)

SAPPHIRE = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
cpu MHz\t\t: 2299.998
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 avx512f avx512bw avx512_vnni

processor\t: 1
model name\t: something else
"""
LSCPU_2x1 = "Architecture:        x86_64\nThread(s) per core:  1\nCore(s) per socket:  2\n"
HASWELL = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2699 v3 @ 2.30GHz
flags\t\t: fpu sse sse2 fma avx avx2
"""
LSCPU_SMT = "Architecture: x86_64\nThread(s) per core: 2\n"


def test_cpuinfo_first_block_only():
    fields = parse_cpuinfo(SAPPHIRE)
    assert fields["model name"] == "Intel(R) Xeon(R) Processor"
    assert "avx512_vnni" in fields["flags"]


def test_avx512_vnni_peak_is_cores_clock_fma_lanes_and_vnni_factor():
    info = read_cpu_info(SAPPHIRE, LSCPU_2x1, usable_cpus=2)
    assert (info.cores, info.mhz) == (2, pytest.approx(2299.998))
    peak = cpu_peak(info)
    assert (peak.simd, peak.fp32_lanes, peak.fma_units, peak.int8_factor) == ("AVX-512", 16, 2, 4)
    assert peak.fp32_gflops == pytest.approx(2 * 2.299998 * 2 * 16 * 2)  # 294.4
    assert peak.int8_gops == pytest.approx(4 * peak.fp32_gflops)
    assert "VNNI" in peak.assumption and "294.4 GFLOP/s" in peak.assumption
    assert peak.peak_for("fp16") == peak.fp32_gflops and peak.peak_for("int8") == peak.int8_gops
    assert cpu_peak(info, fma_units=1).fp32_gflops == pytest.approx(peak.fp32_gflops / 2)


def test_avx2_without_vnni_and_clock_from_the_model_name_and_smt_siblings():
    info = read_cpu_info(HASWELL, LSCPU_SMT, usable_cpus=8)
    assert info.cores == 4  # 8 logical CPUs, 2 threads per core
    assert info.mhz == pytest.approx(2300.0)
    peak = cpu_peak(info)
    assert (peak.simd, peak.fp32_lanes, peak.int8_factor) == ("AVX2", 8, 2)
    assert peak.fp32_gflops == pytest.approx(4 * 2.3 * 2 * 8 * 2)


def test_achieved_gops_counts_a_mac_as_two_operations():
    assert achieved_gops(104_000_000_000, 1.0) == pytest.approx(208.0)
    assert achieved_gops(1, 0.0) == 0.0


def test_jetson_figures_and_frame_rates():
    agx = next(m for m in JETSON_MODULES if m.name.startswith("AGX"))
    assert agx.total_sparse_int8_tops == 275 and agx.gpu_dense_int8_tops == 85 and agx.gpu_dense_fp16_tflops == 42.5
    macs = 104_000_000_000
    assert agx.fps(macs, "int8", 0.3) == pytest.approx(0.3 * 85e12 / 208e9)
    assert agx.fps(macs, "int8", 0.3, sparse=True) == pytest.approx(2 * agx.fps(macs, "int8", 0.3))
    assert agx.fps(macs, "fp16", 0.3) == pytest.approx(agx.fps(macs, "int8", 0.3) / 2)
    rows = jetson_table(macs, 0.3)
    assert [r["module"] for r in rows] == ["Orin Nano 8GB", "Orin NX 16GB", "AGX Orin 64GB"]
    assert rows[0]["sparse_int8_tops_total"] == 40 and rows[1]["sparse_int8_tops_total"] == 100
    assert rows[0]["fps_int8"] < rows[1]["fps_int8"] < rows[2]["fps_int8"]
