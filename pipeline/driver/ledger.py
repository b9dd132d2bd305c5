"""The ledger: the one place a batch's results are recorded. Runs in the driver's process.

Every outcome, whatever produced it (a chain's encode task, a hash failure, a duplicate settled
by its first, a chunk that crashed, an image never reached before a cancel), goes through
``record``, which under one lock writes the manifest row, counts it, keeps its failure code and
timings, hands it to the progress callback and settles the duplicates that waited for it. Readers
(``status`` from the user's thread) take the same lock, so what they see always adds up.

Dask re-runs tasks after a worker dies, so the same input can arrive twice: the manifest keeps an
input's first row only, and whatever it refuses is not counted either.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import get_args

from pipeline.driver.dedup import DuplicateTracker
from pipeline.driver.manifest import ManifestWriter
from pipeline.driver.timings import TimingCollector
from pipeline.inputs import InputFile
from pipeline.progress.publisher import RedisProgress
from pipeline.results import ImageResult, StepTiming, Tally, counted_as
from pipeline.storage import OutputRoot
from pipeline.worker.tasks import ImageWork


class Ledger:
    def __init__(
        self,
        batch_id: str,
        inputs: Sequence[InputFile],
        root: OutputRoot,
        progress: RedisProgress | None = None,
    ) -> None:
        self.inputs = inputs
        self.progress = progress
        self._manifest = ManifestWriter(root, batch_id, len(inputs))
        self._duplicates = DuplicateTracker()
        self._timings = TimingCollector()
        self._failure_codes: Counter[str] = Counter()
        self._counts: Counter[Tally] = Counter()
        self._reused = 0  # of the ok ones
        self._duplicates_of_failed = 0
        self._with_warnings = 0
        self._lock = threading.Lock()

    @property
    def manifest(self) -> str:
        return self._manifest.path

    def record(self, result: ImageResult) -> None:
        """Count one input's outcome (once), and the outcomes of duplicates waiting for it."""
        with self._lock:
            settled = [result]
            while settled:
                result = self._with_columns(settled.pop())
                if not self._manifest.write(result):
                    continue
                tally = counted_as(result.status)
                self._counts[tally] += 1
                self._reused += result.reused
                if tally == "failed" and result.failure is not None:
                    self._failure_codes[result.failure.code] += 1
                self._duplicates_of_failed += result.status == "duplicate_of_failed"
                self._with_warnings += bool(result.warnings)
                self._timings.add(result.timings_ms)
                if self.progress is not None:
                    self.progress.image(result)  # only queues: never waits for Redis
                settled += self._duplicates.settle(result)

    def _with_columns(self, result: ImageResult) -> ImageResult:
        """A URL list's row carries its columns (kept here, in the driver: they never travel to
        the workers)."""
        columns = self.inputs[result.index].columns
        if columns is None or result.columns is not None:
            return result
        return replace(result, columns=dict(columns))

    def refuse_unfetchable(self) -> list[int]:
        """Record the URL-list rows that hold no URL to fetch as failed (nothing to send to a
        worker); return the indices of every other input."""
        usable = []
        for index, item in enumerate(self.inputs):
            if item.refusal is None:
                usable.append(index)
            else:
                self.record(ImageResult(index, item.source, "failed", failure=item.refusal))
        return usable

    def new_images(self, hashed: Sequence[ImageWork]) -> frozenset[int]:
        """From one chunk's hash results (in input order): record hash failures and duplicates
        whose first is known, and return the indices of images seen for the first time."""
        new = set()
        for work in hashed:
            if work.failure is not None:
                self.record(
                    ImageResult(
                        work.index,
                        work.source,
                        "failed",
                        failure=work.failure,
                        timings_ms=work.timings_ms,
                    )
                )
                continue
            with self._lock:
                duplicate = self._duplicates.claim(work.index, work.source, work.sha256)
                first = self._duplicates.is_first(work.index, work.sha256)
            if duplicate is not None:
                self.record(duplicate)
            elif first:
                new.add(work.index)
        return frozenset(new)

    def close(self) -> None:
        """Record every input that has no outcome as cancelled, and publish the manifest."""
        with self._lock:
            missing = list(self._manifest.missing())
        for index in missing:
            self.record(ImageResult(index, self.inputs[index].source, "cancelled"))
        with self._lock:
            self._manifest.close()

    def counts(self) -> dict[str, int]:
        """Inputs by tally, and how many of the ok ones were reused (read together)."""
        with self._lock:
            counts = {str(tally): self._counts[tally] for tally in get_args(Tally)}
            return {**counts, "reused": self._reused}

    def duplicates_of_failed(self) -> int:
        with self._lock:
            return self._duplicates_of_failed

    def images_with_warnings(self) -> int:
        with self._lock:
            return self._with_warnings

    def failures_by_code(self) -> dict[str, int]:
        with self._lock:
            return dict(self._failure_codes)

    def timings(self) -> dict[str, StepTiming]:
        with self._lock:
            return self._timings.summary()

    def processed_digests(self) -> Iterator[str]:
        """The digests of the images this batch processed (from the closed manifest)."""
        return self._manifest.digests()
