"""Which inputs are byte-identical copies of an earlier one, decided from their SHA-256.
Runs in the driver.

The first input with a digest is processed; later ones become rows that point at it: a
``duplicate`` carrying its outputs, or, if the first failed, a ``duplicate_of_failed`` carrying
its failure (a failed input too: it gets no derivatives, and the summary counts it as failed).
A duplicate can be seen before its first finishes, so it waits here until the first's result
arrives.

Any input may turn out to duplicate any earlier one, so every first's outcome is kept until the
batch ends. Kept as ``OutputFile`` objects that would be ~3 KB an image (300 MB at 100k images);
kept here as the outputs' shared shape (size, format, file name: the same for every image of a
batch) plus their numbers packed in an array, it is ~0.3 KB, rebuilt only for a duplicate.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass

from pipeline.errors import Failure
from pipeline.results import ImageResult, OutputFile
from pipeline.storage import image_folder

OutputShape = tuple[tuple[str, str, str], ...]  # (size, format, file name) of each output


@dataclass(frozen=True, slots=True)
class _Outcome:
    source: str
    shape: OutputShape
    numbers: array[int]  # width, height and bytes of each output, in order
    failure: Failure | None

    def outputs(self, sha256: str) -> tuple[OutputFile, ...]:
        folder, n = image_folder(sha256), self.numbers
        return tuple(
            OutputFile(f"{folder}/{name}", size, fmt, n[3 * i], n[3 * i + 1], n[3 * i + 2])
            for i, (size, fmt, name) in enumerate(self.shape)
        )


class DuplicateTracker:
    def __init__(self) -> None:
        self._first_by_digest: dict[str, int] = {}
        self._outcome_by_first: dict[int, _Outcome] = {}
        self._waiting: dict[int, list[tuple[int, str, str]]] = {}
        self._shapes: dict[OutputShape, OutputShape] = {}  # one shared copy of each shape

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
        """Record a first image's outcome; returns the rows of duplicates that waited for it.

        An image whose chunk killed its worker fails without its digest in the row; if it was a
        first, its copies must still learn that it failed (and not end as cancelled). Failures
        without a digest are rare (that, or a file that could not be read), so keeping each
        one's outcome costs nothing that matters."""
        if result.sha256 is None:
            if result.failure is None:
                return []
        elif not self.is_first(result.index, result.sha256):
            return []
        shape = tuple((o.size, o.format, o.path.rsplit("/", 1)[-1]) for o in result.outputs)
        numbers = array("q", [n for o in result.outputs for n in (o.width, o.height, o.bytes)])
        outcome = _Outcome(
            result.source, self._shapes.setdefault(shape, shape), numbers, result.failure
        )
        self._outcome_by_first[result.index] = outcome
        waiting = self._waiting.pop(result.index, [])
        return [_duplicate(index, source, sha256, outcome) for index, source, sha256 in waiting]


def _duplicate(index: int, source: str, sha256: str, outcome: _Outcome) -> ImageResult:
    if outcome.failure is not None:
        return _duplicate_of_failed(index, source, sha256, outcome, outcome.failure)
    return ImageResult(
        index,
        source,
        "duplicate",
        sha256,
        outputs=outcome.outputs(sha256),
        duplicate_of=outcome.source,
    )


def _duplicate_of_failed(
    index: int, source: str, sha256: str, outcome: _Outcome, failure: Failure
) -> ImageResult:
    """The first's failure, worded for this input: its message names the first's path."""
    why = failure.message.removeprefix(f"{outcome.source}: ")
    message = f"{source}: the same bytes as {outcome.source}, which failed: {why}"
    return ImageResult(
        index,
        source,
        "duplicate_of_failed",
        sha256,
        failure=Failure(failure.step, failure.code, message),
        duplicate_of=outcome.source,
    )
