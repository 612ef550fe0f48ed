"""Reliability harness: hostile files, broken inputs, SIGKILLs, full disks and stalled streams, counted.

Everything here drives the real entry points (`segnet-edge ...`, `device/run_camera.py`,
`segnet_edge.load_model`) in child processes and classifies how each ended, so that
a crash, a traceback or a half-written file is a number in one table rather than a
hope. `python -m tools.reliability` (`make reliability`) runs the full form;
tests/reliability runs a short form of the same functions inside `make test`.

Modules: tally (the counts and the table), mutate (seeded file damage), worker (runs
fuzz cases, one forked process each where native code reads the bytes), fuzz,
kills, inputs (datasets, /dev/full, unsafe models), streams (stalling and dying
sources on 127.0.0.1).
"""

from tools.reliability.tally import Tally

__all__ = ["Tally"]
