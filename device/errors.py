"""Errors that every entry point turns into one line and exit code 2.

They live on the device side because the board must report bad input the same
way as the host, and the host may import from device/ but not the reverse.
"""

from __future__ import annotations


class UsageError(Exception):
    """Bad input from the user: the message names the problem and the fix."""


class DataError(UsageError):
    """A dataset or frame source is missing, unreadable or inconsistent."""


class ModelFileError(UsageError):
    """A model or artifact file is missing, unreadable or not a segnet-edge model."""


class OutputError(UsageError):
    """An output could not be written (disk full, no permission); nothing half-written is left behind."""


class IntegrityError(ModelFileError):
    """A model file's bytes do not match the digest recorded when it was written (damaged in copy or storage)."""
