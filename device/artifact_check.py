"""Check a deployable artifact before a native runtime sees it, and contain the runtimes that can still crash.

Users download artifacts and copy them to boards over flaky links, so a model file
may be truncated, bit-flipped or foreign. Python can report that in one line; a
native runtime handed the same bytes may instead kill the process with a signal.
So every artifact goes through three gates:

1. Static checks, in pure Python (numpy-free, no runtime), by the backend that owns the
   file's format (segnet_edge.device.backends.base.damaged): size, then for `.tflite` the
   `TFL3` identifier and a bounds-checked walk of the flatbuffer (every table, vector and
   index in range, every constant tensor's buffer the size its shape says; backends/tflite_file.py),
   for `.onnx` `onnx.checker` when the onnx package is present (backends/onnx_file.py); and the
   segnet-edge metadata the file must carry. A failure is one `ModelFileError` line.
2. A load in a short-lived child process, for the runtimes that still crash on
   damage that passes (1): `probe_in_child`. A backend opts in by returning its
   probe from `Backend.child_probe()`; a child that crashes, hangs or fails becomes
   one line. It costs one extra load and one frame at start-up, once per file per process.
3. The payload digest (segnet_edge.device.integrity): damage that lands in the weights passes
   (1) and (2) and runs, so the SHA-256 recorded at conversion is compared before any runtime
   opens the file (`verify_payload`; `--no-verify` skips it).

Which runtimes need (2) was measured (seeded mutations of the tiny test models, each
load + allocate + one invoke in its own process): ai-edge-litert 2.3 survived ~510
truncations and byte flips of fp32/int8 models (its flatbuffer verifier rejects them)
but died with SIGSEGV on 3 of ~650 field-level mutations: an operator input/output
index pointing at another in-range tensor (in allocate_tensors, XNNPACK; the walk
in (1) cannot know the tensor is wrong) and a tensor pointing at another buffer (in
invoke; (1) now rejects the size mismatch). ONNX Runtime 1.32 survived all ~500
byte-level and field-level mutations (it validates in C++ and raises), so it loads
in process. TensorRT could not be measured here; its backend does not probe yet.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from segnet_edge.device import integrity
from segnet_edge.device.artifact_metadata import read_artifact_metadata
from segnet_edge.device.backends import tflite_file
from segnet_edge.device.errors import ModelFileError
from segnet_edge.device.metadata import ModelMetadata

#: A probe loads the model and runs one frame; a big model on a small board CPU needs seconds.
PROBE_TIMEOUT_S = 120.0

#: The TFLite walk under the name callers have always used (the code lives in backends/tflite_file.py).
walk_tflite = tflite_file.walk


def check_artifact(path: str | Path, verify: bool = True) -> ModelMetadata:
    """Static checks of an artifact, its metadata, then (`verify`) its payload digest; one-line
    ModelFileError (IntegrityError for a digest mismatch) for anything wrong."""
    from segnet_edge.device.backends.base import damaged

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file; check the path")
    problem = damaged(path)
    if problem is not None:
        raise ModelFileError(problem)
    metadata = read_artifact_metadata(path)
    if verify:
        verify_payload(path, metadata)
    return metadata


_verified: set[tuple] = set()


def verify_payload(path: Path, metadata: ModelMetadata) -> None:
    """The artifact's (and an engine's sidecar's) bytes against the digest its metadata records: an
    IntegrityError on mismatch, a warning when none is recorded. Once per file per process unless it changes."""
    from segnet_edge.device.backends.base import payload_files

    files = payload_files(path)
    key = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    if key in _verified:
        return
    try:
        parts = [f.read_bytes() for f in files]
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read it to verify ({exc.strerror or exc}); check the file") from None
    what = f" (with {files[1].name})" if len(files) > 1 else ""
    integrity.check(path, parts, metadata.payload_sha256, what)
    _verified.add(key)


# --- the child-process probe ----------------------------------------------------------------------

_probed: set[tuple[str, int, int]] = set()


def probe_in_child(path: str | Path, runtime: str, code: str, args: list[str],
                   timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Run `python -c code *args` (which loads `path` with `runtime` and runs a frame) in a child process.

    A child that dies by a signal, hangs, or fails with an error becomes a one-line ModelFileError, and
    the caller never hands the file to the runtime itself. A file that passed is not probed again by
    this process unless it changes.
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _probed:
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        result = subprocess.run([sys.executable, "-c", code, *args], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        raise ModelFileError(f"{path}: {runtime} did not finish loading it within {timeout_s:.0f} s in a test "
                             "process; the file is damaged or hostile, re-export it") from None
    if result.returncode < 0:
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        raise ModelFileError(f"{path}: {runtime} crashes on this file ({name} in a test process); the file is "
                             "damaged or hostile, re-export it with `segnet-edge convert`")
    if result.returncode != 0:
        raise ModelFileError(f"{path}: {runtime} cannot load or run it ({_last_error(result.stderr)}); "
                             "re-export it with `segnet-edge convert`")
    _probed.add(key)


def _last_error(stderr: bytes) -> str:
    """The exception line a failed probe printed last (runtime log lines before it are noise)."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no message"
