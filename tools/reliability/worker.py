"""`python -m tools.reliability.worker SPEC.json START`: run fuzz cases, print one JSON line per case.

Why a worker: importing TensorFlow or OpenCV once per case would cost seconds, so
the worker imports what its target needs once and then, for each case:

- `fork` mode (bytes reach native code: LiteRT, ONNX Runtime, HDF5): forks a
  child that runs the case with its stdout/stderr in files, so a case that dies
  by a signal takes only its own process down, and memory one case damaged is
  gone before the next starts;
- `inline` mode (pure-Python validation, e.g. calib.npz): runs the case in the
  worker. If the worker dies anyway, the caller blames the case after the last
  one reported and restarts the worker from the next.

Each line: {"i", "status": "exit" | "signal" | "hang", "code", "signal", "stderr"}.
The caller (fuzz.py) decides what counts as a clean refusal.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

PROG = "reliability-case"


def _as_cli(action: Callable[[], None]) -> int:
    """What every segnet-edge entry point does: UsageError -> one line and exit 2; other errors propagate."""
    from segnet_edge.device.errors import UsageError

    try:
        action()
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _artifact_target(workdir: Path) -> Callable[[str], int]:
    """The board entry point on a synthetic source: checks, probe, load, two frames, report."""
    from segnet_edge.device import camera_main

    def run(case: str) -> int:
        out = Path(tempfile.mkdtemp(dir=workdir))
        return camera_main.main(["-m", case, "--source", "synthetic", "--width", "64", "--height", "48",
                                 "--frames", "2", "--warmup", "0", "--no-plot", "--jsonl", "none", "--out", str(out)])

    return run


def _keras_target(workdir: Path) -> Callable[[str], int]:
    """segnet_edge.load_model (safe mode) and one forward pass, so every weight is read."""
    import numpy as np

    from segnet_edge.model_io import load_model

    def run(case: str) -> int:
        def action() -> None:
            model = load_model(case)
            shape = [1 if d is None else int(d) for d in model.input_shape]
            model(np.zeros(shape, np.float32))

        return _as_cli(action)

    return run


def _calib_target(workdir: Path) -> Callable[[str], int]:
    """calibration.load_calibration_set and the model inputs it yields."""
    from segnet_edge.calibration.representative import load_calibration_set
    from segnet_edge.device.metadata import Normalization

    def run(case: str) -> int:
        def action() -> None:
            calib = load_calibration_set(case)
            for _ in calib.inputs(Normalization()):
                pass

        return _as_cli(action)

    return run


TARGETS: dict[str, Callable[[Path], Callable[[str], int]]] = {
    "artifact": _artifact_target, "keras": _keras_target, "calib": _calib_target,
}


def _forked(run: Callable[[str], int], case: str, timeout_s: float) -> dict:
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the case's own process
            code = 1
            try:
                os.dup2(out.fileno(), 1)
                os.dup2(err.fileno(), 2)
                code = run(case)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:  # noqa: BLE001 - a traceback is a finding, recorded by the parent
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        deadline = time.monotonic() + timeout_s
        status = None
        while status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return {"status": "hang", "code": None, "signal": None, "stderr": _read(err)}
            else:
                time.sleep(0.005)
        if os.WIFSIGNALED(status):
            return {"status": "signal", "code": None, "signal": signal.Signals(os.WTERMSIG(status)).name,
                    "stderr": _read(err)}
        return {"status": "exit", "code": os.WEXITSTATUS(status), "signal": None, "stderr": _read(err)}


def _inline(run: Callable[[str], int], case: str, timeout_s: float) -> dict:
    import contextlib
    import io

    err = io.StringIO()

    def alarm(signum, frame):
        raise TimeoutError("case took too long")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = run(case)
            except TimeoutError:
                return {"status": "hang", "code": None, "signal": None, "stderr": err.getvalue()}
            except BaseException:  # noqa: BLE001 - recorded as a traceback
                traceback.print_exc()
                code = 1
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return {"status": "exit", "code": code, "signal": None, "stderr": err.getvalue()}


def _read(handle) -> str:
    handle.seek(0)
    return handle.read()[-4000:].decode("utf-8", "replace")


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    start = int(argv[1]) if len(argv) > 1 else 0
    workdir = Path(spec["workdir"])
    run = TARGETS[spec["target"]](workdir)
    execute = _forked if spec["mode"] == "fork" else _inline
    for i in range(start, len(spec["cases"])):
        result = execute(run, spec["cases"][i], float(spec["timeout_s"]))
        print(json.dumps({"i": i, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
