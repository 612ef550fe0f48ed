"""What `segnet-edge` and `run_camera.py` share as command lines: one-line errors, exit codes, argument types.

TensorFlow-free (and numpy-free until an error is redacted), so the board's
`run_camera.py` and the host's `segnet-edge --help` use the same code. argparse
turns an ArgumentTypeError into one `error:` line and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable

#: Exit codes: bad input of any kind (usage, data, model file, a failed disk) and Ctrl-C.
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


def redact(text: str) -> str:
    """Credentials in stream URLs never reach the terminal (imported lazily: numpy comes with sources)."""
    from segnet_edge.device.sources import redact as _redact

    return _redact(text)


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit code 2."""

    def error(self, message: str):  # noqa: D401
        self.exit(EXIT_USAGE, f"{self.prog}: error: {redact(message)} (see --help)\n")


def run_guarded(prog: str, run: Callable[[], int | None]) -> int:
    """`run()`'s exit code, or one line on stderr and the code for the exception it raised.

    UsageError (and DataError, ModelFileError, OutputError) and OSError (the disk, a permission
    or a device failed under us) -> 2; KeyboardInterrupt -> 130. Anything else is a bug: traceback.
    """
    from segnet_edge.device.errors import UsageError

    try:
        return int(run() or 0)
    except UsageError as exc:
        print(f"{prog}: error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {redact(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def parse_size(text: str) -> tuple[int, int]:
    """`"96x128"` -> `(96, 128)`: height first, like the HxW shape of an image array."""
    match = _SIZE.match(str(text))
    if not match:
        raise argparse.ArgumentTypeError(f"size must be HEIGHTxWIDTH in pixels, e.g. 96x128 (got {text!r})")
    height, width = int(match.group(1)), int(match.group(2))
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, e.g. 96x128 (got {text!r})")
    return height, width


def positive_int(text: str) -> int:
    """An integer >= 1 (counts, epochs, batch sizes, threads)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (optional counts, seeds, device indices, warm-up frames)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (got {text!r})")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, width multipliers)."""
    value = number(text, "a number > 0")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})")
    return value


def number(text: str, what: str = "a number") -> float:
    """A finite number; range checks that name their flag happen where the config is built."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})")
    return value


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None
