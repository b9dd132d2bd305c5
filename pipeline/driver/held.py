"""The futures a driver holds: what it submits, what ``cancel`` cancels. Runs in the driver's
process; ``cancel`` may come from any thread (the user's, the progress store's, the exit hook).

Only two kinds are held: hash tasks whose chain is not yet submitted, and the encode (leaf)
task of each chain. Those are exactly the ones that may be cancelled: cancelling a held upstream
future whose dependents are not held trips an assertion in the scheduler and disconnects the
client (docs/design.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from typing import Any

from distributed import Client, Future, as_completed

from pipeline.errors import ClusterLost

logger = logging.getLogger(__name__)


class HeldFutures:
    def __init__(self, client: Client, batch_id: str) -> None:
        self._client = client
        self._batch_id = batch_id
        self._lock = threading.Lock()
        self._held: dict[Any, Future[Any]] = {}
        self._cancel_requested = False

    @property
    def cancel_requested(self) -> bool:
        with self._lock:
            return self._cancel_requested

    def submit(self, tasks: list[Any], completions: as_completed) -> None:
        """Compute ``tasks`` and hold their futures; they report to ``completions``."""
        if not tasks:
            return
        # optimize_graph=False: the scheduler's cull of a long list is quadratic (docs/design.md).
        futures = self._client.compute(tasks, optimize_graph=False)
        with self._lock:
            self._held.update((future.key, future) for future in futures)
            cancelled_meanwhile = self._cancel_requested
        completions.update(futures)
        if cancelled_meanwhile:
            self._client.cancel(futures)

    def forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._held.pop(future.key, None)

    def cancel(self) -> None:
        """Cancel every future held now, and any submitted from now on; once only."""
        with self._lock:
            if self._cancel_requested:
                return
            self._cancel_requested = True
            held = list(self._held.values())
        logger.info("batch %s: cancelling %d futures", self._batch_id, len(held))
        self._client.cancel(held)

    def dropped(self) -> ClusterLost:
        """A future came back cancelled although nobody asked to cancel: the client lost its
        scheduler (killed, restarted, unreachable), which forgets every task it held."""
        return ClusterLost(
            f"batch {self._batch_id}: the Dask scheduler went away mid-batch (stopped, "
            "restarted or unreachable); rerun to resume: the same command reuses every "
            "finished image"
        )

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Around reading a future. ``cancel`` runs on another thread, so a future found
        finished can be cancelled by the time it is read: that is one more cancelled chunk,
        whose images the ledger records as cancelled at the end. Only if nobody asked to cancel
        did the cluster drop the work."""
        try:
            yield
        except CancelledError:
            if not self.cancel_requested:
                raise self.dropped() from None
