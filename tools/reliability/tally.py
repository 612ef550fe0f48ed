"""What a reliability run counted, and the one table `make reliability` prints.

Counts are plain integers so that the short form (pytest) and the full form add
up the same way; every count that must be zero is listed in MUST_BE_ZERO, and a
run passes only when all of them are and every unsafe model was refused.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

#: Counters that fail the run when non-zero, with the words the table uses for them.
MUST_BE_ZERO = {
    "undetected": "damaged files that ran undetected",
    "signal_deaths": "signal deaths",
    "tracebacks": "tracebacks",
    "not_one_line": "failures not reported in one line",
    "hangs": "hangs (no answer within the time limit)",
    "unexpected": "unexpected exit codes",
    "partial_files": "partial files under a final name",
    "resume_errors": "resumes at a wrong epoch / wrong epoch count",
    "temps_left": "temporary files left after recovery",
    "leaks": "credentials leaked to logs, reports or errors",
}


@dataclass
class Tally:
    """Counts from one part of a run; `merge` adds parts together."""

    tried: collections.Counter = field(default_factory=collections.Counter)  # bad inputs, by kind
    notes: collections.Counter = field(default_factory=collections.Counter)  # informational counts
    fuzz_cases: int = 0
    kills: int = 0
    unsafe_tried: int = 0
    unsafe_blocked: int = 0
    contained_crashes: int = 0  # native crashes a child-process probe absorbed
    refused: int = 0  # damaged files refused with a one-line error
    accepted: int = 0  # damaged files without a payload digest that still loaded (calibration sets)
    undetected: int = 0  # damaged model files (they carry a payload digest) that ran anyway
    signal_deaths: int = 0
    tracebacks: int = 0
    not_one_line: int = 0
    hangs: int = 0
    unexpected: int = 0
    partial_files: int = 0
    resume_errors: int = 0
    temps_left: int = 0
    leaks: int = 0
    problems: list[str] = field(default_factory=list)  # one line per failure, for the report and asserts

    def merge(self, other: Tally) -> Tally:
        self.tried.update(other.tried)
        self.notes.update(other.notes)
        for name in ("fuzz_cases", "kills", "unsafe_tried", "unsafe_blocked", "contained_crashes", "refused", "accepted",
                     *MUST_BE_ZERO):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)
        return self

    def fail(self, counter: str, problem: str) -> None:
        """Count one failure of kind `counter` (a MUST_BE_ZERO key) and keep its description."""
        setattr(self, counter, getattr(self, counter) + 1)
        self.problems.append(f"{MUST_BE_ZERO[counter]}: {problem}")

    @property
    def failures(self) -> int:
        return sum(getattr(self, name) for name in MUST_BE_ZERO) + (self.unsafe_tried - self.unsafe_blocked)

    @property
    def passed(self) -> bool:
        return self.failures == 0

    def table(self, title: str = "segnet-edge reliability") -> str:
        """One Markdown table: inputs tried by kind, then the counts that must be zero."""
        rows: list[tuple[str, str, str]] = []
        for kind, count in sorted(self.tried.items()):
            rows.append((f"bad input tried: {kind}", str(count), ""))
        rows.append(("fuzz cases run (each in its own process)", str(self.fuzz_cases), ""))
        rows.append(("  damaged files refused with one line", str(self.refused), ""))
        rows.append(("  damaged calibration sets that still loaded (arrays CRC-32 checked)", str(self.accepted), ""))
        rows.append(("  native crashes contained by the child-process probe", str(self.contained_crashes), ""))
        rows.append(("kills (SIGKILL at seeded random moments)", str(self.kills), ""))
        rows.append(("unsafe loads blocked", f"{self.unsafe_blocked} / {self.unsafe_tried}", "all"))
        for note, count in sorted(self.notes.items()):
            rows.append((f"note: {note}", str(count), ""))
        for name, words in MUST_BE_ZERO.items():
            rows.append((words, str(getattr(self, name)), "0"))
        width = max(len(r[0]) for r in rows)
        lines = [title, "", f"| {'what':<{width}} | {'count':>9} | must be |", f"|{'-' * (width + 2)}|{'-' * 11}|---------|"]
        lines += [f"| {what:<{width}} | {count:>9} | {must:^7} |" for what, count, must in rows]
        lines.append("")
        lines.append("PASS" if self.passed else f"FAIL: {self.failures} problem(s)")
        lines += [f"  - {p}" for p in self.problems[:40]]
        return "\n".join(lines)
