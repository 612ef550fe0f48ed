"""The one writer every output goes through: failures in one line, device nodes and links left alone,
temporaries of killed writers cleaned up."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from segnet_edge.device.atomic import atomic_path, write_text_atomic
from segnet_edge.device.errors import OutputError


def test_a_failed_write_is_one_line_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(OutputError) as info, atomic_path(target) as tmp:
        tmp.write_text("half")
        raise OSError(28, "No space left on device")
    assert str(info.value).startswith(f"{target}: cannot write (No space left on device)")
    assert "\n" not in str(info.value)
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_dev_full_gives_enospc_in_one_line_and_stays_a_device(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(OutputError, match=r"/dev/full: cannot write \(No space left on device\)"):
        write_text_atomic("/dev/full", "x" * 100_000)
    assert not os.path.isfile("/dev/full")  # still the character device, not a file renamed over it


def test_a_fifo_is_written_in_place_and_a_symlink_is_kept(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[str] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    write_text_atomic(fifo, "through the pipe")
    reader.join(timeout=10)
    assert received == ["through the pipe"] and fifo.is_fifo()
    real = tmp_path / "real.json"
    link = tmp_path / "latest.json"
    link.symlink_to(real)
    write_text_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".best.{dead}.ab12_x.tmp.h5"
    live = tmp_path / f".best.{os.getppid()}.cd34_y.tmp.h5"
    other = tmp_path / f".best.{dead}.not.ours.tmp.h5"  # a different target's naming: left alone
    for path in (stale, live, other):
        path.write_text("partial")
    write_text_atomic(tmp_path / "best.h5", "complete")
    assert not stale.exists() and live.exists() and other.exists()
