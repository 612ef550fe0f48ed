"""Never leave a half-written output: write to a temporary name beside the target, then rename.

The temporary file is flushed to disk before the rename and the folder after it, so
pulling the power leaves either the old file or the new one, never a short one. A
target that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a FIFO,
`/dev/full`) is written in place: renaming over it would replace the device node.
A failed write (ENOSPC, EACCES, EFBIG) becomes one `OutputError` line with the
temporary file removed; a temporary left by a killed process is removed by the
next write to the same target.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from segnet_edge.device.errors import OutputError


def _in_place(target: Path) -> bool:
    """Targets renaming would destroy: a device, FIFO or socket, or anything under /dev or /proc
    (`/dev/stdout` links to the caller's pipe or file, which a rename would not reach)."""
    try:
        if any(str(hop).startswith(("/dev/", "/proc/")) for hop in _link_chain(target)):
            return True
        return target.exists() and not target.is_file() and not target.is_dir()
    except OSError:
        return False


def _link_chain(target: Path) -> list[Path]:
    """The target and every path its symlinks lead through, absolute."""
    chain = [Path(os.path.abspath(target))]
    for _ in range(40):
        if not chain[-1].is_symlink():
            break
        chain.append(Path(os.path.abspath(chain[-1].parent / os.readlink(chain[-1]))))
    chain.append(Path(os.path.realpath(target)))
    return chain


def write_error(target: str | os.PathLike, exc: OSError) -> OutputError:
    """The one-line error for a failed write of `target` (for writers that stream outside atomic_path)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"{target}: cannot write ({reason}); check free space and permissions, or choose another output")


def _fsync(path: Path, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        if directory:
            return  # some file systems cannot open folders; the rename is still atomic
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not directory:
            raise
    finally:
        os.close(fd)


def _temp_prefix(target: Path) -> str:
    return f".{target.stem}."


def _remove_stale_temps(target: Path) -> None:
    """Remove temporaries of `target` whose writer process no longer exists (it was killed mid-write)."""
    prefix = _temp_prefix(target)
    ours = re.compile(r"(\d+)\.[A-Za-z0-9_]+\.tmp" + re.escape(target.suffix))
    for name in glob.glob(glob.escape(str(target.parent / prefix)) + "*"):
        match = ours.fullmatch(Path(name).name[len(prefix):])
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            if Path(name).is_file():
                os.unlink(name)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder (same suffix); rename it over the target on success.

    On any failure the temporary file is removed and the target is left as it was; an OSError
    (disk full, permissions) is re-raised as a one-line OutputError naming the target.
    """
    target = Path(target)
    if target.is_symlink() and not _in_place(target):
        target = Path(os.path.realpath(target))  # replace the file the link points to, keep the link
    if _in_place(target):
        try:
            yield target
        except OSError as exc:
            raise write_error(target, exc) from None
        return
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(target)
        fd, tmp = tempfile.mkstemp(prefix=f"{_temp_prefix(target)}{os.getpid()}.", suffix=f".tmp{target.suffix}",
                                   dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(target, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # mkstemp's 0600 would hide outputs from other users
        os.replace(tmp_path, target)
        _fsync(target.parent, directory=True)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise write_error(target, exc) from None
        raise


def _read_umask() -> int:
    """The process umask, read without changing it where Linux allows (threads may be writing)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)  # at import, before any writer thread exists
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def write_bytes_atomic(target: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(target, text.encode("utf-8"))
