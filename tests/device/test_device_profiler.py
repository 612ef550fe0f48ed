"""Summaries, report files, host probes and the tegrastats parser."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from segnet_edge.device import hostinfo
from segnet_edge.device.profiler import (
    STAGES,
    FrameLog,
    FrameRecord,
    ProfileReport,
    rss_growth,
    stage_stats,
    summarize,
)
from segnet_edge.device.reports import REPORT_FILES, markdown_table, write_reports

#: Real tegrastats lines: Jetson AGX Orin (JetPack 5/6), Orin Nano (JetPack 6), Nano (JetPack 4).
ORIN = ("08-29-2023 10:00:00 RAM 2643/62841MB (lfb 14277x4MB) SWAP 0/31421MB (cached 0MB) "
        "CPU [1%@729,0%@729,3%@729,0%@729,off,off,off,off,0%@729,0%@729,0%@729,0%@729] EMC_FREQ 0%@2133 "
        "GR3D_FREQ 12%@[305,305] VIC_FREQ 729 APE 174 CV0@-256C CPU@45.281C Tboard@34C SOC2@42.062C "
        "Tdiode@35.5C SOC0@42.593C CV1@-256C GPU@-256C tj@45.281C SOC1@41.781C CV2@-256C "
        "VDD_GPU_SOC 3182mW/3182mW VDD_CPU_CV 795mW/795mW VIN_SYS_5V0 4212mW/4212mW VDDQ_VDD2_1V8AO 503mW/503mW")
ORIN_NANO = ("RAM 2193/7620MB (lfb 2x4MB) SWAP 0/3810MB (cached 0MB) CPU [2%@1510,4%@1510,0%@1510,1%@1510,"
             "0%@729,0%@729] GR3D_FREQ 37% cpu@47.5C soc2@46.468C soc0@47.093C gpu@46.656C tj@47.5C "
             "soc1@46.812C VDD_IN 4532mW/4532mW VDD_CPU_GPU_CV 497mW/497mW VDD_SOC 1435mW/1435mW")
NANO = ("RAM 1470/3964MB (lfb 1x4MB) SWAP 0/1982MB (cached 0MB) IRAM 0/252kB(lfb 252kB) "
        "CPU [12%@1479,6%@1479,7%@1479,6%@1479] EMC_FREQ 3%@1600 GR3D_FREQ 99%@921 APE 25 PLL@31C "
        "CPU@34C PMIC@100C GPU@32.5C AO@40.5C thermal@33C POM_5V_IN 2325/2325 POM_5V_GPU 0/0 POM_5V_CPU 398/398")


def test_parse_tegrastats_on_real_lines():
    orin = hostinfo.parse_tegrastats(ORIN)
    assert orin["ram_used_mb"] == 2643 and orin["ram_total_mb"] == 62841
    assert orin["gpu_load_pct"] == 12
    assert orin["power_mw"] == 4212 and orin["rails_mw"]["VDD_GPU_SOC"] == 3182
    assert "RAM" not in orin["rails_mw"] and "SWAP" not in orin["rails_mw"]
    assert orin["cpu_load_pct"] == pytest.approx(4 / 8)
    assert orin["temps_c"]["tj"] == pytest.approx(45.281) and "CV0" not in orin["temps_c"]
    nano_orin = hostinfo.parse_tegrastats(ORIN_NANO)
    assert nano_orin["gpu_load_pct"] == 37 and nano_orin["power_mw"] == 4532
    nano = hostinfo.parse_tegrastats(NANO)
    assert nano["ram_used_mb"] == 1470 and nano["gpu_load_pct"] == 99 and nano["power_mw"] == 2325
    assert hostinfo.parse_tegrastats("garbage") == {}
    summary = hostinfo.summarize_tegrastats([orin, nano_orin])
    assert summary["samples"] == 2 and summary["gpu_load_pct"] == {"mean": 24.5, "max": 37}


def test_parse_nvpmodel_and_host_info():
    assert hostinfo.parse_nvpmodel("NV Power Mode: MAXN\n0\n") == "MAXN (mode 0)"
    assert hostinfo.parse_nvpmodel("NV Power Mode: 15W\n") == "15W"
    assert hostinfo.parse_nvpmodel("command not found") is None
    info = hostinfo.host_info(threads=2).to_json()
    assert info["cores"] >= 1 and info["threads"] == 2 and info["cpu"]
    assert "numpy" in info["runtimes"] and "opencv" in info["runtimes"] and "python" in info["runtimes"]


def test_rss_with_and_without_psutil(monkeypatch):
    assert 10 < hostinfo.rss_mb() < 100_000
    import builtins

    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError("psutil absent on this board")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    statm = hostinfo._rss_reader()
    assert abs(statm() / 2**20 - hostinfo.rss_mb()) < 50


def test_stage_stats_and_rss_growth():
    stats = stage_stats(list(range(1, 101)))
    assert stats["mean"] == 50.5 and stats["max"] == 100
    assert stats["p50"] == pytest.approx(50.5) and stats["p99"] == pytest.approx(99.01)
    assert math.isnan(stage_stats([])["mean"])
    assert rss_growth([100.0] * 50 + [110.0] * 50) == pytest.approx(10.0)
    assert rss_growth([100.0, 100.5, 99.5, 100.0] * 25) == pytest.approx(0.0, abs=0.6)


def _records(n: int, warmup: int, inference_ms: float = 10.0) -> list[FrameRecord]:
    records = []
    for i in range(n):
        slow = 100.0 if i < warmup else 0.0
        records.append(FrameRecord(index=i, warmup=i < warmup, start_s=i * 0.02, done_s=(i + 1) * 0.02,
                                   capture_ms=1.0, preprocess_ms=2.0, inference_ms=inference_ms + slow,
                                   postprocess_ms=1.0, render_ms=1.0, write_ms=0.5, total_ms=15.0 + slow, rss_mb=100.0 + i * 0.01))
    return records


def test_summarize_excludes_warmup():
    report = summarize(_records(60, warmup=10), model="m.tflite", backend="litert", runtime="x", source="synthetic")
    assert report.frames == 50 and report.warmup_frames == 10
    assert report.latency_ms["inference"]["max"] == 10.0  # the slow warm-up frames are not in it
    assert report.fps == pytest.approx(50.0)
    assert set(report.latency_ms) == set(STAGES)
    assert report.memory["rss_growth_mb"] == pytest.approx(0.45, abs=0.05)


def test_summarize_splits_memory_into_load_first_frame_and_steady_state():
    rows = _records(60, warmup=10)
    load = {"rss_before_load_mb": 40.0, "rss_loaded_mb": 90.0, "rss_hwm_mb": 150.0}
    memory = summarize(rows, model="m", backend="litert", runtime="x", source="s", load_memory=load).memory
    assert {k: memory[k] for k in load} == load
    assert memory["rss_first_frame_mb"] == rows[0].rss_mb  # a warm-up frame: the first one the runtime ran
    window = [r.rss_mb for r in rows if not r.warmup][-5:]  # 50 measured frames: the last tenth
    assert memory["rss_steady_mb"] == pytest.approx(float(np.median(window)))
    report = ProfileReport(host={}, config={}, models=[summarize(rows, model="m.tflite", backend="litert", runtime="x",
                                                                  source="s", load_memory=load)])
    assert f"| 90 / {rows[0].rss_mb:.0f} / {memory['rss_steady_mb']:.0f} | 150.0 |" in markdown_table(report)


def test_report_files(tmp_path):
    records = {"a/fp32.tflite": _records(30, 5), "b/int8.tflite": _records(30, 5, inference_ms=4.0)}
    report = ProfileReport(host=hostinfo.host_info().to_json(), config={"frames": 30})
    for key, rows in records.items():
        report.models.append(summarize(rows, model=key, backend="litert", runtime="x", source="synthetic"))
    report.models.append(summarize([], model="c/empty.onnx", backend="onnxruntime", runtime="y", source="s"))
    records["c/empty.onnx"] = []
    written = write_reports(tmp_path, report, records)
    assert sorted(p.name for p in written) == sorted(REPORT_FILES)
    data = json.loads((tmp_path / "profile.json").read_text())  # strict JSON: NaN became null
    assert [m["backend"] for m in data["models"]] == ["litert", "litert", "onnxruntime"]
    first = data["models"][0]
    assert set(first["latency_ms"]["total"]) == {"mean", "p50", "p90", "p99", "max"}
    assert {"rss_peak_mb", "rss_growth_mb"} <= set(first["memory"])
    assert data["models"][2]["fps"] is None
    rows = (tmp_path / "frames.csv").read_text().splitlines()
    assert len(rows) == 1 + 60 and rows[0].startswith("model,frame,warmup")
    table = markdown_table(report)
    assert "| fp32.tflite | litert | 25 |" in table and "| int8.tflite |" in table
    assert (tmp_path / "profile.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporaries
    np.testing.assert_allclose(first["latency_ms"]["inference"]["mean"], 10.0)


def test_frame_log_is_compact_bounded_and_ordered():
    log = FrameLog(keep=50)
    for record in _records(130, warmup=10):
        log.append(record)
    assert len(log) == 50 and log.dropped == 80
    assert [r.index for r in log] == list(range(80, 130))
    assert log.column("inference_ms", warmup=False).shape == (50,)
    report = summarize(log, model="m", backend="litert", runtime="x", source="camera 0")
    assert report.frames == 120 and report.warmup_frames == 10 and report.summary_window == 50
    assert report.fps == pytest.approx(50.0)
    small = FrameLog.from_records(_records(20, warmup=2))
    assert small.dropped == 0 and [r.to_json() for r in small] == [r.to_json() for r in _records(20, 2)]
