"""Which chunks the driver hashes next, which are in flight, and the order hashes resolve in.
Runs in the driver thread; pure bookkeeping, it asks nothing of the cluster.

At most ``size`` chunks are in flight at once: enough to keep every thread busy while the
driver reacts, few enough that client and scheduler memory stay flat however large the batch.
Hash results are taken in input order, whatever order they finish in, so that the first of
identical inputs is always the earliest one. A chunk whose task crashed because its worker kept
dying has its images retried one at a time, each only when nothing else is in flight.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any

from distributed import Future

from pipeline.driver.crashes import Quarantine


class Window:
    def __init__(self, chunks: list[list[int]], size: int) -> None:
        self.size = size
        self._waiting: deque[tuple[int, list[int]]] = deque(enumerate(chunks))
        self._next_chunk_id = len(chunks)
        self._in_flight: dict[int, list[int]] = {}  # chunk → its input indices still unresolved
        self._hashed: dict[int, Future[Any]] = {}  # hash tasks done, waiting for their turn
        self._next_to_resolve = 0
        self._quarantine = Quarantine()

    def to_start(self) -> list[tuple[int, list[int]]]:
        """Chunks to hash now, each with its input indices; they count as in flight."""
        if not self._waiting and not self._in_flight:
            # Dask blames every task a dying worker held, queued ones included, so a suspect
            # is retried only alone: an innocent then simply succeeds.
            suspect = self._quarantine.next_alone()
            if suspect is not None:
                self._waiting.append((self._next_chunk_id, [suspect]))
                self._next_chunk_id += 1
        started = []
        while len(self._in_flight) < self.size and self._waiting:
            chunk, members = self._waiting.popleft()
            self._in_flight[chunk] = members
            started.append((chunk, members))
        return started

    def hashed(self, chunk: int, future: Future[Any]) -> None:
        self._hashed[chunk] = future

    def hashed_in_order(self) -> Iterator[tuple[int, Future[Any]]]:
        """The hash futures whose turn has come, in input order; each is handed out once."""
        while self._next_to_resolve in self._hashed:
            chunk = self._next_to_resolve
            self._next_to_resolve += 1
            yield chunk, self._hashed.pop(chunk)

    def chained(self, chunk: int, members: list[int]) -> None:
        """The images of ``chunk`` that go on to validate → resize → encode (maybe none)."""
        if members:
            self._in_flight[chunk] = members
        else:
            self._in_flight.pop(chunk, None)

    def finished(self, chunk: int) -> None:
        self._in_flight.pop(chunk, None)

    def crashed(self, chunk: int, error: BaseException | None) -> tuple[list[int], int]:
        """A chunk's task raised: the images that fail now, and how many are retried alone."""
        members = self._in_flight.pop(chunk, [])
        failing = self._quarantine.admit(members, error)
        return failing, len(members) - len(failing)
