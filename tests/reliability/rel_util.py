"""The session's reliability counts: every test adds its Tally here; conftest prints the table at the end."""

from __future__ import annotations

from tools.reliability.tally import Tally

SESSION = Tally()
RAN: list[str] = []


def record(tally: Tally, name: str) -> None:
    """Add a test's counts to the session table, then fail the test if it found anything."""
    SESSION.merge(tally)
    RAN.append(name)
    assert not tally.problems and tally.passed, "\n".join(tally.problems[:20]) or tally.table()
