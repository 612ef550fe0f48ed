"""What the numbers were measured on, and device-level samplers: process RSS, NVML, tegrastats.

Each probe degrades to "absent" rather than failing: a board without NVML, a
desktop without tegrastats and a container without /proc/device-tree are all normal.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

RUNTIME_DISTRIBUTIONS = ("numpy", "ai-edge-litert", "tflite-runtime", "onnxruntime", "onnxruntime-gpu",
                         "tensorrt", "cuda-python", "pycuda", "psutil", "pynvml", "nvidia-ml-py")


# --- process memory --------------------------------------------------------------------------


def _rss_reader():
    try:
        import psutil

        process = psutil.Process()
        return lambda: process.memory_info().rss
    except ImportError:
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

        def statm() -> int:
            with open("/proc/self/statm", "rb") as f:
                return int(f.read().split()[1]) * page

        return statm


_read_rss = _rss_reader()


def rss_mb() -> float:
    """Resident set size of this process in MiB (psutil, else /proc/self/statm)."""
    try:
        return _read_rss() / 2**20
    except OSError:
        return float("nan")


def peak_rss_mb() -> float | None:
    """This process's peak resident set so far (Linux VmHWM), in MiB: the transients between the per-frame
    samples included (weight packing at load, a runtime's first-frame allocations). None where unknown."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


class NvmlMonitor:
    """Device memory in use on an NVIDIA GPU, when pynvml and a driver are present (never on Jetson)."""

    def __init__(self, index: int = 0):
        self.available = False
        self.name: str | None = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(self._handle)
            self.name = name.decode() if isinstance(name, bytes) else str(name)
            self.available = True
        except Exception:  # noqa: BLE001 - ImportError or any NVMLError: no NVML here
            self.available = False

    def used_mb(self) -> float | None:
        if not self.available:
            return None
        try:
            return self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20
        except Exception:  # noqa: BLE001
            return None

    def close(self) -> None:
        if self.available:
            try:
                self._nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001
                pass
            self.available = False


# --- tegrastats --------------------------------------------------------------------------------

_RAM = re.compile(r"\bRAM (\d+)/(\d+)MB")
_GR3D = re.compile(r"\bGR3D_FREQ (\d+)%")
_CPU = re.compile(r"\bCPU \[([^\]]*)\]")
_RAIL = re.compile(r"\b([A-Z][A-Z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
_TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
_INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "VIN_SYS_5V0", "VIN")
_NOT_RAILS = ("RAM", "SWAP", "IRAM")


def parse_tegrastats(line: str) -> dict:
    """One tegrastats line -> {ram_used_mb, ram_total_mb, gpu_load_pct, cpu_load_pct, power_mw, rails_mw, temps_c}.

    Keys are present only when the line has them (boards differ: Nano prints
    POM_5V_IN, Xavier/Orin print VDD_IN or VIN_SYS_5V0 with mW units).
    """
    sample: dict = {}
    if m := _RAM.search(line):
        sample["ram_used_mb"], sample["ram_total_mb"] = int(m.group(1)), int(m.group(2))
    if m := _GR3D.search(line):
        sample["gpu_load_pct"] = int(m.group(1))
    if m := _CPU.search(line):
        loads = [int(x) for x in re.findall(r"(\d+)%", m.group(1))]
        if loads:
            sample["cpu_load_pct"] = sum(loads) / len(loads)
    rails = {name: int(now) for name, now, _avg in _RAIL.findall(line) if name not in _NOT_RAILS}
    if rails:
        sample["rails_mw"] = rails
        main = next((rails[r] for r in _INPUT_RAILS if r in rails), None)
        sample["power_mw"] = main if main is not None else sum(rails.values())
    temps = {name: float(value) for name, value in _TEMP.findall(line) if float(value) > -100}
    if temps:
        sample["temps_c"] = temps
    return sample


def summarize_tegrastats(samples: list[dict]) -> dict:
    """Mean and max of RAM in use, GPU load and input power over the samples."""
    summary: dict = {"samples": len(samples)}
    for key in ("ram_used_mb", "gpu_load_pct", "cpu_load_pct", "power_mw"):
        values = [s[key] for s in samples if key in s]
        if values:
            summary[key] = {"mean": sum(values) / len(values), "max": max(values)}
    return summary


class TegrastatsMonitor:
    """Runs `tegrastats` while a model streams and keeps its parsed samples (Jetson only)."""

    def __init__(self, interval_ms: int = 500, executable: str | None = None):
        self.executable = executable or shutil.which("tegrastats")
        self.interval_ms = interval_ms
        self.samples: list[dict] = []
        self._process: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    @property
    def available(self) -> bool:
        return self.executable is not None

    def start(self) -> None:
        if not self.available:
            return
        try:
            self._process = subprocess.Popen([self.executable, "--interval", str(self.interval_ms)],
                                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self._process = None
            return
        self._thread = threading.Thread(target=self._read, name="tegrastats", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            sample = parse_tegrastats(line)
            if sample:
                self.samples.append(sample)

    def stop(self) -> dict | None:
        """Stop the tegrastats process we started; the summary of what it reported."""
        if self._process is None:
            return None
        self._process.terminate()
        try:
            self._process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self._process.kill()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._process = None
        return summarize_tegrastats(self.samples)


# --- host description --------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").replace("\x00", "").strip() or None
    except OSError:
        return None


def cpu_name() -> str:
    text = _read("/proc/cpuinfo") or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        m = re.search(rf"^{key}\s*:\s*(.+)$", text, re.MULTILINE)
        if m:
            return m.group(1).strip()
    return platform.processor() or platform.machine()


def parse_nvpmodel(text: str) -> str | None:
    """`nvpmodel -q` output ("NV Power Mode: MAXN\\n0") -> "MAXN (mode 0)"."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None
    mode = re.search(r"^\s*(\d+)\s*$", text, re.MULTILINE)
    return f"{m.group(1)} (mode {mode.group(1)})" if mode else m.group(1)


def jetson_info() -> dict | None:
    """Board model, L4T release, power mode and GPU clock on a Jetson; None elsewhere."""
    release = _read("/etc/nv_tegra_release")
    model = _read("/proc/device-tree/model")
    if release is None and not (model and "jetson" in model.lower()):
        return None
    info: dict = {"model": model, "l4t": release.splitlines()[0] if release else None}
    nvpmodel = shutil.which("nvpmodel")
    if nvpmodel:
        try:
            result = subprocess.run([nvpmodel, "-q"], capture_output=True, text=True, timeout=5)
            info["power_mode"] = parse_nvpmodel(result.stdout)
        except (OSError, subprocess.TimeoutExpired):
            info["power_mode"] = None
    for freq in sorted(Path("/sys/class/devfreq").glob("*/cur_freq")):
        name = _read(str(freq.parent / "device/of_node/name")) or freq.parent.name
        if "gpu" in name.lower() or "gv11b" in name or "ga10b" in name or "gp10b" in name:
            value = _read(str(freq))
            if value and value.isdigit():
                info["gpu_clock_mhz"] = int(value) / 1e6
                break
    return info


def runtime_versions() -> dict[str, str]:
    """Installed versions of the runtimes that matter, without importing them (plus the loaded cv2)."""
    from importlib import metadata

    versions: dict[str, str] = {"python": platform.python_version()}
    for dist in RUNTIME_DISTRIBUTIONS:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    try:
        import cv2

        versions["opencv"] = cv2.__version__
    except ImportError:
        pass
    return versions


@dataclass
class HostInfo:
    cpu: str
    cores: int
    threads: int | None  # CPU threads given to the runtimes (None: runtime default)
    machine: str
    system: str
    runtimes: dict[str, str] = field(default_factory=dict)
    gpu: str | None = None
    jetson: dict | None = None

    def to_json(self) -> dict:
        return asdict(self)


def host_info(threads: int | None = None, gpu: str | None = None) -> HostInfo:
    return HostInfo(
        cpu=cpu_name(),
        cores=os.cpu_count() or 1,
        threads=threads,
        machine=platform.machine(),
        system=f"{platform.system()} {platform.release()}",
        runtimes=runtime_versions(),
        gpu=gpu,
        jetson=jetson_info(),
    )
