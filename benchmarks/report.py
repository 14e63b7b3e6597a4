"""Where benchmark figures go, and how a run hands them over: its table on stdout, its JSON under results/."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def publish(report: dict[str, Any], table: str, out: Path) -> None:
    """Print `table`, and write `report` (with the command that made it) as JSON to `out`."""
    report["command"] = " ".join(sys.argv)
    print(table)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwritten to {out}")
