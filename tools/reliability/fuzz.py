"""Fuzz the files users hand to segnet-edge: damaged copies of real artifacts, models and calibration sets.

Each damaged copy goes through the entry point a user would use (the board's
run_camera on a `.tflite` / `.onnx`, `segnet_edge.load_model` plus a forward pass
on a `.h5`, `load_calibration_set` on a `calib.npz`) in its own process, and the
way it ended is classified: ran, refused with one line, or a finding (signal,
traceback, several lines, hang, odd exit code). Model files carry a payload digest
(segnet_edge.device.integrity), so a damaged one that runs is a finding too
("damaged files that ran undetected"). Findings keep their case file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.reliability.mutate import BYTE_KINDS, cases
from tools.reliability.tally import Tally

#: file kind (an artifact's file format, else the suffix) -> (worker target, worker mode, mutation kinds).
#: Native readers get one process per case.
PLANS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "tflite": ("artifact", "fork", (*BYTE_KINDS, "index")),
    "onnx": ("artifact", "fork", BYTE_KINDS),
    "h5": ("keras", "fork", BYTE_KINDS),
    "npz": ("calib", "inline", BYTE_KINDS),
}
CASE_TIMEOUT_S = 180.0
#: File kinds whose writer records a payload digest: every damaged copy must be refused.
SEALED_KINDS = ("tflite", "onnx", "h5")


@dataclass(frozen=True)
class FuzzTarget:
    """One clean file to damage `count` times; `label` names it in the table."""

    path: Path
    count: int
    label: str = ""

    @property
    def kind(self) -> str:
        from segnet_edge.device.backends.base import file_format

        return file_format(self.path) or self.path.suffix.lstrip(".").lower()


def worker_env() -> dict[str, str]:
    """Quiet TensorFlow, no GPU (the fuzz tests file parsing, not kernels), this checkout importable."""
    root = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
            "PYTHONPATH": root + (os.pathsep + path if path else "")}


def run_worker(target: str, mode: str, case_files: list[Path], workdir: Path,
               timeout_s: float = CASE_TIMEOUT_S) -> list[dict]:
    """One result dict per case (see worker.py); a worker that dies blames the case it was on."""
    spec = workdir / f"spec-{target}-{len(list(workdir.glob('spec-*')))}.json"
    spec.write_text(json.dumps({"target": target, "mode": mode, "cases": [str(c) for c in case_files],
                                "timeout_s": timeout_s, "workdir": str(workdir)}))
    results: dict[int, dict] = {}
    start = 0
    with open(workdir / "worker.log", "ab") as log:
        while start < len(case_files):
            process = subprocess.Popen([sys.executable, "-m", "tools.reliability.worker", str(spec), str(start)],
                                       stdout=subprocess.PIPE, stderr=log, text=True, env=worker_env())
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("{"):
                    result = json.loads(line)
                    results[int(result["i"])] = result
            process.wait()
            missing = [i for i in range(start, len(case_files)) if i not in results]
            if not missing:
                break
            died = process.returncode < 0
            results[missing[0]] = {"status": "signal" if died else "exit", "code": None if died else process.returncode,
                                   "signal": f"signal {-process.returncode}" if died else None,
                                   "stderr": "the worker itself ended on this case"}
            start = missing[0] + 1
    return [results[i] for i in range(len(case_files))]


def classify(result: dict, where: str, tally: Tally, sealed: bool = False) -> str:
    """Count one case: 'ran', 'refused', or a finding (which also lands in tally.problems). A `sealed` case
    (a damaged file that carries a payload digest) that ran is the finding 'undetected'."""
    stderr = result.get("stderr") or ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    if result["status"] == "signal":
        tally.fail("signal_deaths", f"{where}: {result.get('signal')}")
        return "signal"
    if result["status"] == "hang":
        tally.fail("hangs", where)
        return "hang"
    if "Traceback (most recent call last)" in stderr:
        tally.fail("tracebacks", f"{where}: {lines[-1] if lines else '?'}")
        return "traceback"
    if result["code"] == 0:
        if sealed:
            tally.fail("undetected", where)
            return "undetected"
        tally.accepted += 1
        return "ran"
    errors = [line for line in lines if ": error: " in line]
    if result["code"] == 2 and len(errors) == 1 and lines[-1] == errors[0]:
        tally.refused += 1
        if "crashes on this file" in errors[0]:
            tally.contained_crashes += 1
        return "refused"
    if result["code"] == 2:
        tally.fail("not_one_line", f"{where}: {' | '.join(lines[-3:])}")
        return "not one line"
    tally.fail("unexpected", f"{where}: exit {result['code']}: {lines[-1] if lines else ''}")
    return "unexpected"


def fuzz_file(target: FuzzTarget, seed: int, workdir: Path) -> Tally:
    """Damage `target.path` `target.count` times (seeded) and run every case; keep the files of findings."""
    tally = Tally()
    worker_target, mode, kinds = PLANS[target.kind]
    label = target.label or target.path.name
    case_dir = workdir / f"cases-{label}".replace(" ", "_")
    case_dir.mkdir(parents=True, exist_ok=True)
    original = target.path.read_bytes()
    files, kinds_used, changed = [], [], []
    for i, (kind, data) in enumerate(cases(original, target.count, seed, kinds)):
        path = case_dir / f"{i:04d}-{kind}{target.path.suffix}"
        path.write_bytes(data)
        files.append(path)
        kinds_used.append(kind)
        changed.append(data != original)  # flips that cancel out, an index rewritten to itself: no damage
    for path, kind, damaged, result in zip(files, kinds_used, changed, run_worker(worker_target, mode, files, workdir)):
        tally.tried[f"{label} {kind}"] += 1
        tally.fuzz_cases += 1
        where = f"{label} case {path.name} (seed {seed})"
        if classify(result, where, tally, sealed=damaged and target.kind in SEALED_KINDS) in ("ran", "refused"):
            path.unlink()
    return tally


def fuzz(targets: list[FuzzTarget], seed: int, workdir: Path) -> Tally:
    """Every target, each with its own derived seed so adding one does not change the others' cases."""
    tally = Tally()
    for n, target in enumerate(targets):
        tally.merge(fuzz_file(target, seed * 1000 + n, workdir))
    return tally
