"""Which inputs are byte-identical copies of an earlier one, decided from their SHA-256.

The first input with a digest is processed; later ones become ``duplicate`` rows that point at
it and carry its outputs (or its failure). A duplicate can be seen before its first finishes, so
it waits here until the first's result arrives. Per digest the tracker keeps an index and, once
known, the first's outcome: a few hundred bytes an image, so 100k inputs stay well under 100 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import Failure
from pipeline.records import ImageResult, OutputFile


@dataclass(frozen=True)
class _Outcome:
    source: str
    outputs: tuple[OutputFile, ...]
    failure: Failure | None


class DuplicateTracker:
    def __init__(self) -> None:
        self._first_by_digest: dict[str, int] = {}
        self._outcome_by_first: dict[int, _Outcome] = {}
        self._waiting: dict[int, list[tuple[int, str, str]]] = {}

    def claim(self, index: int, source: str, sha256: str) -> ImageResult | None:
        """None if ``index`` is the first with this digest (so it must be processed); otherwise
        its duplicate row, or None for now while the first is still running (see ``settle``)."""
        first = self._first_by_digest.setdefault(sha256, index)
        if first == index:
            return None
        outcome = self._outcome_by_first.get(first)
        if outcome is None:
            self._waiting.setdefault(first, []).append((index, source, sha256))
            return None
        return _duplicate(index, source, sha256, outcome)

    def is_first(self, index: int, sha256: str) -> bool:
        return self._first_by_digest.get(sha256) == index

    def settle(self, result: ImageResult) -> list[ImageResult]:
        """Record a first image's outcome; returns the rows of duplicates that waited for it."""
        if result.sha256 is None or not self.is_first(result.index, result.sha256):
            return []
        outcome = _Outcome(result.source, result.outputs, result.failure)
        self._outcome_by_first[result.index] = outcome
        waiting = self._waiting.pop(result.index, [])
        return [_duplicate(index, source, sha256, outcome) for index, source, sha256 in waiting]

    def unsettled(self) -> list[tuple[int, str]]:
        """Duplicates still waiting for a first that never finished (the batch was cancelled)."""
        return [(index, source) for rows in self._waiting.values() for index, source, _ in rows]


def _duplicate(index: int, source: str, sha256: str, outcome: _Outcome) -> ImageResult:
    return ImageResult(
        index,
        source,
        "duplicate",
        sha256,
        outputs=outcome.outputs,
        failure=outcome.failure,
        duplicate_of=outcome.source,
    )
