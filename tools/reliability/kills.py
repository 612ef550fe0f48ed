"""SIGKILL the commands that write files, at seeded random moments, and check what they leave.

A kill is the worst an interruption can do (no handler runs), as when a board
loses power. After each kill every file under its final name must be complete
and loadable; temporaries may remain until the next run of the command removes
them. `train --resume` must go on from the last complete epoch and finish with
the epoch count asked for, each epoch in the log exactly once.

Kill moments are drawn from a seeded RNG in two ways, alternating: "mid-write"
(right after the k-th temporary file or staging folder appears, so the kill lands
inside a write) and "at t" (uniform over a complete run's duration).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tools.reliability.tally import Tally

CLI = [sys.executable, "-m", "segnet_edge.cli"]
RUN_TIMEOUT_S = 900.0


def cli_env() -> dict[str, str]:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}


def run_cli(argv: list[str], timeout_s: float = RUN_TIMEOUT_S, **kwargs) -> subprocess.CompletedProcess:
    """`segnet-edge ARGV` to completion, output captured."""
    return subprocess.run([*CLI, *map(str, argv)], capture_output=True, text=True, timeout=timeout_s,
                          env=cli_env(), **kwargs)


def is_temporary(path: Path) -> bool:
    """Names our writers use before the final rename: `.stem.PID.xxx.tmp.suffix` and convert's staging folders."""
    return path.name.startswith(".") and (".tmp" in path.name or ".staging-" in path.name)


def _temporaries(folder: Path) -> set[str]:
    found: set[str] = set()
    try:
        for entry in os.scandir(folder):
            if entry.name.startswith("."):
                found.add(entry.name)
                if entry.is_dir():
                    found.update(f"{entry.name}/{inner}" for inner in os.listdir(entry.path))
    except OSError:
        pass
    return found


@dataclass(frozen=True)
class KillPlan:
    """When to kill: after the `writes`-th temporary appears, or `at_s` seconds after the start."""

    writes: int | None = None
    at_s: float | None = None

    def describe(self) -> str:
        return f"mid-write #{self.writes}" if self.writes else f"at {self.at_s:.2f} s"


def plan_kill(rng: random.Random, n: int, duration_s: float | None, max_writes: int = 3) -> KillPlan:
    """Even kills land inside a write (after 1..max_writes temporaries), odd ones at a uniform time."""
    if n % 2 == 0 or not duration_s:
        return KillPlan(writes=rng.randint(1, max_writes))
    return KillPlan(at_s=rng.uniform(0.05, 1.0) * duration_s)


def run_and_kill(argv: list[str], plan: KillPlan, watch: Path, log: Path) -> tuple[bool, float, int]:
    """Start `segnet-edge ARGV`, SIGKILL it as planned; (killed while running, seconds it ran, exit code)."""
    watch.mkdir(parents=True, exist_ok=True)
    seen = _temporaries(watch)
    with open(log, "ab") as out:
        process = subprocess.Popen([*CLI, *map(str, argv)], stdout=out, stderr=out, env=cli_env())
        start = time.monotonic()
        writes = 0
        while process.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > RUN_TIMEOUT_S:
                break
            if plan.writes is not None:
                now = _temporaries(watch)
                writes += len(now - seen)
                seen |= now
                if writes >= plan.writes:
                    break
            elif elapsed >= (plan.at_s or 0.0):
                break
            time.sleep(0.001)  # writes of small files take milliseconds: poll often enough to land inside one
        alive = process.poll() is None
        if alive:
            process.send_signal(signal.SIGKILL)
        code = process.wait()
        return alive, time.monotonic() - start, code


# --- what a file under its final name must be --------------------------------------------------------


def check_file(path: Path) -> str | None:
    """None when `path` is complete and loadable by the reader segnet-edge has for it, else why not."""
    from segnet_edge.device.backends.base import is_artifact

    try:
        suffix = path.suffix.lower()
        if suffix in (".h5", ".keras"):
            from segnet_edge.model_io import load_model

            load_model(path)
            if path.name == "last.h5":
                import h5py

                from segnet_edge.train import RESUME_GROUP

                with h5py.File(path, "r") as f:
                    int(f[RESUME_GROUP].attrs["epochs_done"])
        elif suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".npz":
            from segnet_edge.calibration.representative import load_calibration_set

            load_calibration_set(path)
        elif is_artifact(path):
            from segnet_edge.device.backends.base import load_backend

            with load_backend(path):
                pass
        elif suffix == ".csv":
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            if lines and (not all(line.endswith("\n") for line in lines)
                          or len({line.count(",") for line in lines}) != 1):
                return "a half-written row"
        elif suffix in (".md", ".txt"):
            if not path.read_text(encoding="utf-8").strip():
                return "empty"
        elif suffix == ".png":
            import cv2

            if cv2.imread(str(path)) is None:
                return "unreadable image"
    except Exception as exc:  # noqa: BLE001 - any failure to read is the finding
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return None


def check_outputs(folder: Path, tally: Tally, context: str) -> None:
    """Every non-temporary file in `folder` must pass check_file."""
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.is_file() and not is_temporary(path):
            problem = check_file(path)
            if problem:
                tally.fail("partial_files", f"{context}: {path.name}: {problem}")


def count_temporaries(folder: Path, tally: Tally, context: str) -> None:
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if is_temporary(path):
            tally.fail("temps_left", f"{context}: {path.name}")


# --- train: kill, resume, kill, ... then resume to the end ----------------------------------------------


def _epochs_in(last: Path) -> int:
    if not last.is_file():
        return 0
    import h5py

    from segnet_edge.train import RESUME_GROUP

    with h5py.File(last, "r") as f:
        return int(f[RESUME_GROUP].attrs["epochs_done"])


def kill_train(train_args: list[str], epochs: int, kills: int, seed: int, workdir: Path) -> Tally:
    """`train_args` without --out/--epochs/--resume. Kills, then a resume to the end, per output folder."""
    tally = Tally()
    rng = random.Random(seed)
    run, out, duration = 0, workdir / "train-0", None
    for n in range(kills):
        if _epochs_in(out / "last.h5") >= epochs:  # a kill landed after the last epoch committed: next folder
            run += 1
            out = workdir / f"train-{run}"
        last = out / "last.h5"
        done_before = _epochs_in(last)
        argv = ["train", *train_args, "--epochs", str(epochs), "--out", str(out), *(["--resume"] if last.is_file() else [])]
        plan = plan_kill(rng, n, duration, max_writes=1 + 3 * epochs)  # config, then best/last/state per epoch
        killed, elapsed, code = run_and_kill(argv, plan, out, workdir / "train.log")
        context = f"train kill {n + 1} ({plan.describe()})"
        tally.kills += killed
        tally.tried["SIGKILL: train"] += killed
        check_outputs(out, tally, context)
        done_after = _epochs_in(last) if last.is_file() else 0
        if done_after < done_before:
            tally.fail("resume_errors", f"{context}: last.h5 went back from epoch {done_before} to {done_after}")
        if not killed:  # it finished first: its duration sets the scale for timed kills; next folder
            duration = elapsed
            if code != 0:
                tally.fail("unexpected", f"train run {n + 1}: exit {code} (see train.log)")
            _finish_train(out, epochs, done_before, tally, f"train run {n + 1} (finished before its kill)")
            run += 1
            out = workdir / f"train-{run}"
        else:
            duration = duration or elapsed * 2
    if _epochs_in(out / "last.h5") >= epochs:
        _finish_train(out, epochs, epochs, tally, "train killed after its last epoch", expect_history=False)
    elif (out / "last.h5").is_file() or run == 0:  # resume the killed chain (or train once from nothing)
        start = _epochs_in(out / "last.h5")
        resume = ["--resume"] if (out / "last.h5").is_file() else []
        result = run_cli(["train", *train_args, "--epochs", str(epochs), "--out", str(out), *resume])
        if result.returncode != 0:
            tally.fail("unexpected", f"train resume to the end: exit {result.returncode}: "
                                     f"{(result.stderr.strip().splitlines() or [''])[-1]}")
        else:
            _finish_train(out, epochs, start, tally, "train resume to the end", result.stdout)
    return tally


def _finish_train(out: Path, epochs: int, start: int, tally: Tally, context: str, stdout: str | None = None,
                  expect_history: bool = True) -> None:
    """A finished chain: complete outputs, the right epochs, each logged once, no temporaries."""
    check_outputs(out, tally, context)
    if expect_history:  # a run that ended on its own wrote its result and cleaned the temporaries up
        count_temporaries(out, tally, context)
    try:
        if _epochs_in(out / "last.h5") != epochs:
            tally.fail("resume_errors", f"{context}: last.h5 holds {_epochs_in(out / 'last.h5')} of {epochs} epochs")
        if expect_history:
            result = json.loads((out / "train_result.json").read_text())
            history = [int(h["epoch"]) for h in result["history"]]
            if result["epochs_done"] != epochs or history != list(range(start + 1, epochs + 1)):
                tally.fail("resume_errors", f"{context}: resumed at epoch {start}, ran epochs {history}, "
                                            f"reports {result['epochs_done']} of {epochs}")
        if stdout is not None and json.loads(stdout.strip().splitlines()[-1])["epochs"] != epochs:
            tally.fail("resume_errors", f"{context}: printed a wrong epoch count")
        import csv

        with open(out / "log.csv", encoding="utf-8") as f:
            logged = [int(row["epoch"]) for row in csv.DictReader(f)]
        if logged != list(range(epochs)):
            tally.fail("resume_errors", f"{context}: log.csv holds epochs {logged}, not 0..{epochs - 1} once each")
    except (OSError, ValueError, KeyError, IndexError) as exc:
        tally.fail("resume_errors", f"{context}: {type(exc).__name__}: {exc}")


# --- one-output commands: calibrate, prune, quantize, convert --------------------------------------------


@dataclass(frozen=True)
class KillTarget:
    """A command whose outputs all land in `folder`; `argv` is complete (segnet-edge ARGV)."""

    name: str
    argv: list[str]
    folder: Path
    kills: int
    ok_codes: tuple[int, ...] = (0,)  # convert exits 1 when an artifact misses its parity target
    watch: Path | None = None  # where its temporaries appear (convert stages beside OUT); default: folder
    max_writes: int = 1  # temporaries one run writes: mid-write kills pick one of them


def kill_command(target: KillTarget, seed: int, workdir: Path, duration_s: float | None = None) -> Tally:
    """Kill `target` `kills` times, checking its folder after each; then run it to the end."""
    tally = Tally()
    rng = random.Random(seed)
    for n in range(target.kills):
        plan = plan_kill(rng, n, duration_s, target.max_writes)
        killed, elapsed, code = run_and_kill(target.argv, plan, target.watch or target.folder,
                                             workdir / f"{target.name}.log")
        if not killed and code not in target.ok_codes:
            tally.fail("unexpected", f"{target.name} run {n + 1}: exit {code} (see {target.name}.log)")
        tally.kills += killed
        tally.tried[f"SIGKILL: {target.name}"] += killed
        if not killed:
            duration_s = elapsed
        elif duration_s is None:
            duration_s = elapsed * 2
        check_outputs(target.folder, tally, f"{target.name} kill {n + 1} ({plan.describe()})")
    result = run_cli(target.argv)
    context = f"{target.name} after its kills"
    if result.returncode not in target.ok_codes:
        tally.fail("unexpected", f"{context}: exit {result.returncode}: "
                                 f"{(result.stderr.strip().splitlines() or [''])[-1]}")
    check_outputs(target.folder, tally, context)
    count_temporaries(target.folder, tally, context)
    if target.watch is not None:
        count_temporaries(target.watch, tally, context)  # the final run removes killed runs' staging
    return tally


def stale_staging(folder: Path) -> int:
    """convert's staging folders still there after the final run (it removes those of killed runs)."""
    return sum(1 for p in folder.iterdir() if ".staging-" in p.name) if folder.is_dir() else 0
