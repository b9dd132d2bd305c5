"""Small helpers for printing results as Markdown."""

from __future__ import annotations

import statistics
import sys
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table; numbers right-aligned."""
    texts = [[str(cell) for cell in row] for row in rows]
    aligns = [
        "---:" if rows and all(_numeric(row[i]) for row in rows) else "---"
        for i in range(len(headers))
    ]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(aligns) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in texts]
    return "\n".join(lines)


def _numeric(cell: object) -> bool:
    return isinstance(cell, int | float) or str(cell).lstrip("-").replace(".", "", 1).isdigit()


def megabytes(size_bytes: float) -> str:
    return f"{size_bytes / 2**20:.0f} MB"


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def progress(message: str) -> None:
    """Progress goes to stderr so stdout stays the Markdown report."""
    print(message, file=sys.stderr, flush=True)
