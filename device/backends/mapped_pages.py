"""Drop a memory-mapped model file's pages from the resident set once the runtime no longer needs them.

LiteRT memory-maps the `.tflite` and, at `allocate_tensors()`, XNNPACK reads every weight once to repack it
into buffers of its own. The file pages read for that stay mapped, and count in RSS, beside the packed copy:
about the file's size (29.6 MB for the full-size int8 SegNet) held for nothing. A read-only mapping's pages
can be dropped at any time (MADV_DONTNEED): the file is unchanged, so a later access reads the same bytes
back from it. The kernel may keep them in its page cache, which is reclaimable and not this process's RSS.

Only mappings that cannot have been written are touched (no `w` permission); Linux only, a no-op elsewhere,
and it never raises: releasing memory is an optimisation, never a reason for a model not to run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MADV_DONTNEED = 4  # Linux, every architecture
MAPS = "/proc/self/maps"
SMAPS = "/proc/self/smaps"


@dataclass(frozen=True)
class Mapping:
    """One line of /proc/self/maps that maps the file."""

    start: int
    end: int
    perms: str

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Release:
    """What `release_file_pages` did: mappings advised, their size and their resident bytes just before."""

    mappings: int = 0
    mapped_bytes: int = 0
    resident_bytes: int = 0
    error: str | None = None


def file_mappings(path: str | os.PathLike, maps: str = MAPS) -> list[Mapping]:
    """The read-only mappings of `path`'s file (matched by device and inode, so any name of it counts)."""
    st = os.stat(path)
    wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    found = []
    with open(maps) as f:
        for line in f:
            fields = line.split(maxsplit=5)
            if len(fields) < 6 or "w" in fields[1] or fields[1][0] != "r":
                continue
            major, _, minor = fields[3].partition(":")
            if (int(major, 16), int(minor, 16), int(fields[4])) != wanted:
                continue
            start, _, end = fields[0].partition("-")
            found.append(Mapping(int(start, 16), int(end, 16), fields[1]))
    return found


def resident_bytes(mappings: list[Mapping], smaps: str = SMAPS) -> int:
    """The resident bytes (smaps' `Rss:`) of these mappings, exactly as the kernel counts them in RSS."""
    starts = {m.start for m in mappings}
    total, current = 0, False
    with open(smaps) as f:
        for line in f:
            head = line.split(maxsplit=1)[0]
            if "-" in head and not head.endswith(":"):
                current = int(head.partition("-")[0], 16) in starts
            elif current and head == "Rss:":
                total += int(line.split()[1]) * 1024
    return total


def _madvise() -> Callable[[int, int, int], int]:
    """libc's madvise (the mmap module only advises its own mappings, not the runtime's)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    madvise = libc.madvise
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    return madvise


def release_file_pages(path: str | os.PathLike) -> Release:
    """MADV_DONTNEED every read-only mapping of `path` in this process; call it once the runtime has copied what
    it needs (LiteRT: after `allocate_tensors()`). A path that is not a mapped file releases nothing."""
    if not sys.platform.startswith("linux"):
        return Release()
    try:
        if not Path(path).is_file():
            return Release()
        mappings = file_mappings(path)
        if not mappings:
            return Release()
        before = resident_bytes(mappings)
        madvise = _madvise()
        for m in mappings:
            if madvise(m.start, m.size, MADV_DONTNEED) != 0:
                return Release(len(mappings), sum(m.size for m in mappings), before,
                               f"madvise: {os.strerror(ctypes.get_errno())}")
        return Release(len(mappings), sum(m.size for m in mappings), before)
    except (OSError, ValueError, AttributeError) as exc:  # no /proc, an odd maps line, no libc madvise
        return Release(error=f"{exc.__class__.__name__}: {exc}")
