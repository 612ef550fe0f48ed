"""A SIGKILLed convert leaves its staging folder behind (no `finally` runs); the next run on OUT removes it."""

from __future__ import annotations

import os
import subprocess
import sys

from segnet_edge.convert import remove_stale_staging


def test_stale_staging_of_dead_processes_is_removed_and_live_ones_kept(tmp_path):
    out = tmp_path / "export"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".export.staging-{dead_pid}-abc123"
    live = tmp_path / f".export.staging-{os.getpid()}-def456"
    other = tmp_path / f".export2.staging-{dead_pid}-ghi789"  # another OUT's: not ours to touch
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "model_int8.tflite").write_bytes(b"partial")
    removed = remove_stale_staging(out)
    assert removed == [stale]
    assert not stale.exists() and live.is_dir() and other.is_dir()
