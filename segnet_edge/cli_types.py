"""argparse `type=` converters shared by several commands, so they reject bad input with the same words.

argparse turns an ArgumentTypeError into one `error:` line and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import re

_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")


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
    """An integer >= 1 (counts, epochs, batch sizes)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1 (got {text!r})")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (optional counts, seeds)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0 (got {text!r})")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, width multipliers)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0 (got {text!r})")
    return value


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer (got {text!r})") from None
