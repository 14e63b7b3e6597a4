"""Outcome counts of the fault runs, filled by the tests and printed by tests/conftest.py at the end of the
session (with pytest-xdist, each worker's counts are sent to the controller and added up there)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

OUTCOMES = ("exact", "clean error", "wrong answer", "traceback")


@dataclass
class Tally:
    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, fault_class: str, outcome: str) -> None:
        assert outcome in OUTCOMES, outcome
        self.counts.setdefault(fault_class, Counter())[outcome] += 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {name: dict(counts) for name, counts in self.counts.items()}

    def merge(self, counts: dict[str, dict[str, int]]) -> None:
        for name, outcomes in counts.items():
            self.counts.setdefault(name, Counter()).update(outcomes)

    def table(self) -> list[str]:
        header = ("fault class", "runs", "exact plans", "clean errors", "wrong answers", "tracebacks")
        rows = [header] + [
            (name, str(sum(c.values())), *(str(c[o]) for o in OUTCOMES)) for name, c in self.counts.items()
        ]
        totals = Counter[str]()
        for c in self.counts.values():
            totals.update(c)
        rows.append(("total", str(sum(totals.values())), *(str(totals[o]) for o in OUTCOMES)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths,
                                                                                                      strict=True)))
                 for row in rows]
        lines.insert(1, "-" * len(lines[0]))
        lines.insert(len(lines) - 1, "-" * len(lines[0]))
        return lines


TALLY = Tally()
