"""The hardware's limits: this CPU's peak from its cores, clock and SIMD width, and Jetson Orin on paper.

Peaks are *computed* and printed with their assumptions, so a reader can check them:

    fp32 peak = cores x clock x FMA units x fp32 lanes per vector x 2 (an FMA is 2 ops)
    int8 peak = fp32 peak x 4 with VNNI (vpdpbusd: 4 int8 MACs per 32-bit lane), x 2 without
                (vpmaddubsw + vpmaddwd: twice the fp32 MAC rate at best)

The clock is the nominal one /proc/cpuinfo reports (a VM shows no turbo and AVX-512 code may
run slower), and the FMA unit count is an assumption, printed as one.

The Jetson figures are NVIDIA's published module peaks (see JETSON_SOURCES); a frame rate is
computed from them at a stated efficiency, never measured here.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

# --- this CPU ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuInfo:
    """What /proc/cpuinfo and lscpu say about the cores this process may use."""

    model_name: str
    cores: int  # physical cores this process may run on
    threads_per_core: int
    mhz: float
    flags: frozenset[str]
    arch: str = "x86_64"

    def to_json(self) -> dict:
        data = asdict(self)
        data["flags"] = sorted(f for f in self.flags if _interesting_flag(f))
        return data


def _interesting_flag(flag: str) -> bool:
    return flag.startswith(("avx", "fma", "sse4", "amx", "asimd", "sve", "neon")) or flag in ("f16c", "vnni")


def parse_cpuinfo(text: str) -> dict[str, str]:
    """The first processor block of /proc/cpuinfo as a dict (keys lower-case)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    return fields


def parse_lscpu(text: str) -> dict[str, str]:
    """`lscpu` output as a dict (keys lower-case, without the trailing colon)."""
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip().lower()] = value.strip()
    return fields


def read_cpu_info(cpuinfo: str | None = None, lscpu: str | None = None, usable_cpus: int | None = None) -> CpuInfo:
    """This machine's CPU (or the given texts': tests pass them in)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    if lscpu is None:
        try:
            lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10,
                                   env={**os.environ, "LC_ALL": "C"}).stdout
        except (OSError, subprocess.SubprocessError):
            lscpu = ""
    proc, ls = parse_cpuinfo(cpuinfo), parse_lscpu(lscpu)
    flags = frozenset((proc.get("flags") or proc.get("features") or ls.get("flags", "")).split())
    threads_per_core = int(ls.get("thread(s) per core", "1") or 1)
    if usable_cpus is None:
        usable_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    cores = max(1, usable_cpus // max(1, threads_per_core))
    mhz = _float(proc.get("cpu mhz")) or _float(ls.get("cpu max mhz")) or _float(ls.get("cpu mhz"))
    if not mhz:  # e.g. "Intel(R) Xeon(R) CPU @ 2.20GHz"
        match = re.search(r"@\s*([\d.]+)\s*GHz", proc.get("model name", ""))
        mhz = 1000.0 * float(match.group(1)) if match else 0.0
    model = proc.get("model name") or ls.get("model name") or "unknown CPU"
    arch = ls.get("architecture") or os.uname().machine
    return CpuInfo(model, cores, threads_per_core, float(mhz), flags, arch)


def _float(text: str | None) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class CpuPeak:
    """Peak arithmetic rates, with the assumption in words."""

    cores: int
    ghz: float
    simd: str
    fp32_lanes: int
    fma_units: int
    int8_factor: int  # int8 MACs per fp32 FMA lane-cycle
    int8_path: str

    @property
    def fp32_gflops(self) -> float:
        return self.cores * self.ghz * self.fma_units * self.fp32_lanes * 2

    @property
    def int8_gops(self) -> float:
        return self.fp32_gflops * self.int8_factor

    @property
    def assumption(self) -> str:
        return (f"{self.cores} core(s) x {self.ghz:.2f} GHz x {self.fma_units} FMA unit(s) x {self.fp32_lanes} fp32 "
                f"lanes ({self.simd}) x 2 = {self.fp32_gflops:.1f} GFLOP/s fp32; int8 x{self.int8_factor} "
                f"({self.int8_path}) = {self.int8_gops:.1f} GOP/s")

    def peak_for(self, precision: str) -> float:
        """GOP/s this CPU can reach for a row of `precision` (fp16 weights run in fp32 on CPUs)."""
        return self.int8_gops if precision == "int8" else self.fp32_gflops

    def to_json(self) -> dict:
        return {**asdict(self), "fp32_gflops": self.fp32_gflops, "int8_gops": self.int8_gops,
                "assumption": self.assumption}


def cpu_peak(info: CpuInfo, fma_units: int | None = None) -> CpuPeak:
    """Peak from the widest SIMD the flags show. FMA units: 2 unless told (every AVX2 core since Haswell,
    and AVX-512 Xeon Gold/Platinum; some Xeon Silver/Bronze and client parts have one 512-bit unit)."""
    flags = info.flags
    if "avx512f" in flags:
        simd, lanes = "AVX-512", 16
    elif "avx2" in flags or "avx" in flags:
        simd, lanes = ("AVX2" if "avx2" in flags else "AVX"), 8
    elif "asimd" in flags or info.arch in ("aarch64", "arm64"):
        simd, lanes = "NEON", 4
    else:
        simd, lanes = "SSE", 4
    has_fma = "fma" in flags or simd == "NEON"
    units = fma_units if fma_units is not None else 2
    if not has_fma:  # separate mul + add ports: the same 2 ops per lane-cycle at best
        simd += " (no FMA)"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        factor, path = 4, "VNNI vpdpbusd: 4 int8 MACs per 32-bit lane"
    elif "asimddp" in flags:
        factor, path = 4, "NEON sdot: 4 int8 MACs per 32-bit lane"
    else:
        factor, path = 2, "no VNNI: vpmaddubsw/vpmaddwd, 2 int8 MACs per 32-bit lane"
    return CpuPeak(info.cores, info.mhz / 1000.0, simd, lanes, units, factor, path)


def achieved_gops(macs: int, seconds: float) -> float:
    """Operations per second (1 MAC = 2 ops) of one frame of `macs` in `seconds`, in G."""
    return 2.0 * macs / seconds / 1e9 if seconds > 0 else 0.0


# --- Jetson Orin on paper ----------------------------------------------------------------------

#: Where the figures come from. NVIDIA quotes "AI performance" as sparse INT8 TOPS (2:4 structured
#: sparsity doubles the dense rate); dense INT8 is half of it, and Ampere tensor cores run FP16 at half
#: the INT8 rate, so dense FP16 tensor TFLOPS are a quarter of the sparse INT8 figure.
JETSON_SOURCES = (
    "NVIDIA Jetson AGX Orin Series Technical Brief v1.2 (2022), module comparison table",
    "NVIDIA Jetson Orin NX Series and Jetson Orin Nano Series module data sheets (2023): 'AI Performance'",
)


@dataclass(frozen=True)
class JetsonModule:
    """One module's GPU peak (and the DLAs beside it, which TensorRT can use for some layers)."""

    name: str
    gpu_sparse_int8_tops: float  # published
    dla_sparse_int8_tops: float  # published (0: no DLA on this module)
    gpu: str
    power_w: str

    @property
    def total_sparse_int8_tops(self) -> float:
        return self.gpu_sparse_int8_tops + self.dla_sparse_int8_tops

    @property
    def gpu_dense_int8_tops(self) -> float:
        return self.gpu_sparse_int8_tops / 2

    @property
    def gpu_dense_fp16_tflops(self) -> float:
        return self.gpu_sparse_int8_tops / 4

    def fps(self, macs: int, precision: str, efficiency: float, sparse: bool = False) -> float:
        """Frames per second if `efficiency` of the GPU peak were reached on `macs` per frame."""
        peak = self.gpu_dense_int8_tops if precision == "int8" else self.gpu_dense_fp16_tflops
        if sparse:
            peak *= 2
        return efficiency * peak * 1e12 / (2.0 * macs)

    def to_json(self) -> dict:
        return {**asdict(self), "total_sparse_int8_tops": self.total_sparse_int8_tops,
                "gpu_dense_int8_tops": self.gpu_dense_int8_tops, "gpu_dense_fp16_tflops": self.gpu_dense_fp16_tflops}


JETSON_MODULES = (
    # Orin Nano 8GB: 40 TOPS (GPU only; no DLA), 1024-core Ampere GPU, 32 tensor cores at 625 MHz, 7-15 W.
    # (JetPack 6.1's "Super" mode raises the GPU clock to 1020 MHz: 67 TOPS.)
    JetsonModule("Orin Nano 8GB", 40.0, 0.0, "1024-core Ampere, 32 tensor cores, 625 MHz", "7-15 W"),
    # Orin NX 16GB: 100 TOPS = GPU 60 + 2 x NVDLA v2 40; 1024-core GPU, 32 tensor cores at 918 MHz, 10-25 W.
    JetsonModule("Orin NX 16GB", 60.0, 40.0, "1024-core Ampere, 32 tensor cores, 918 MHz", "10-25 W"),
    # AGX Orin 64GB: 275 TOPS = GPU 170 + 2 x NVDLA v2 105; 2048-core GPU, 64 tensor cores at 1.3 GHz, 15-60 W.
    JetsonModule("AGX Orin 64GB", 170.0, 105.0, "2048-core Ampere, 64 tensor cores, 1.3 GHz", "15-60 W"),
)

#: The share of the GPU's dense peak a batch-1 VGG-class network reaches in TensorRT: convolutions
#: with 64-512 channels tile well, but the first/last layers (3 and 11 channels), the pooling-index
#: ops and memory traffic do not. A stated planning figure, not a measurement.
DEFAULT_JETSON_EFFICIENCY = 0.30


def jetson_table(macs: int, efficiency: float = DEFAULT_JETSON_EFFICIENCY) -> list[dict]:
    """One row per module: its peaks and the frame rates `macs` per frame would reach."""
    rows = []
    for module in JETSON_MODULES:
        rows.append({
            "module": module.name, "gpu": module.gpu, "power": module.power_w,
            "sparse_int8_tops_total": module.total_sparse_int8_tops,
            "gpu_sparse_int8_tops": module.gpu_sparse_int8_tops,
            "gpu_dense_int8_tops": module.gpu_dense_int8_tops,
            "gpu_dense_fp16_tflops": module.gpu_dense_fp16_tflops,
            "fps_int8": module.fps(macs, "int8", efficiency),
            "fps_int8_sparse": module.fps(macs, "int8", efficiency, sparse=True),
            "fps_fp16": module.fps(macs, "fp16", efficiency),
        })
    return rows
