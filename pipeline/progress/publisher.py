"""The progress callback: the driver calls it as each image's outcome arrives. Runs in the
driver's process, with a delivery thread of its own.

Without a Redis URL the batch's own counters (``BatchHandle.status``) are the whole story. With
one, ``RedisProgress`` forwards every outcome and state change to the store so that any process
can read, follow or cancel the batch. Writes go through a queue and a background thread: Redis
being slow or gone never slows or stops the images, the thread retries with backoff, and the
final state lands when Redis is back. The same thread relays cancel requests made elsewhere.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ProgressStoreUnavailable
from pipeline.progress.store import BatchRecordLost, RedisStore, redact
from pipeline.results import ImageResult

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 7 * 24 * 3600
CANCEL_POLL_S = 0.25
HEARTBEAT_S = 5.0
_MAX_BACKOFF_S = 5.0


@dataclass(frozen=True)
class _StateChange:
    state: str
    fields: dict[str, Any]


_Operation = tuple[int, str, str, str] | _StateChange


class RedisProgress:
    """Records one batch's progress in Redis; ``image`` and ``state`` never block or raise."""

    def __init__(
        self,
        store: RedisStore,
        batch_id: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        on_cancel_request: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.batch_id = batch_id
        self.ttl_s = ttl_s
        self._on_cancel_request = on_cancel_request
        self._queue: queue.Queue[_Operation] = queue.Queue()
        self._closing = threading.Event()
        self._drained = threading.Event()
        self._cancel_relayed = False
        self._in_outage = False
        self._last_heartbeat = 0.0
        # What has been sent, to replay if Redis loses the batch: a restart without
        # persistence (as CI's and many caches run) must not leave counts short.
        self._created: dict[str, Any] = {}
        self._last_state: _StateChange | None = None
        self._sent: list[tuple[int, str, str, str]] = []
        self._thread = threading.Thread(
            target=self._deliver, name=f"thumbflow-redis-{batch_id}", daemon=True
        )

    def __repr__(self) -> str:
        return f"RedisProgress({redact(self.store.url)!r}, batch={self.batch_id!r})"

    def start(self, fields: dict[str, Any]) -> None:
        """Create the batch record (queued) and start delivering."""
        self._queue.put(_StateChange("queued", {"created_at": time.time(), **fields}))
        self._thread.start()

    def state(self, state: str, **fields: Any) -> None:
        self._queue.put(_StateChange(state, fields))

    def image(self, result: ImageResult) -> None:
        code = result.failure.code if result.failure else ""
        row = (result.index, result.status, result.source, code)
        self._sent.append(row)
        self._queue.put(row)

    def close(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for everything queued to reach Redis (2 s at most while
        Redis is unreachable). If it has not, the thread keeps trying in the background for as
        long as this process lives."""
        self._closing.set()
        delivered = self._drained.wait(min(timeout_s, 2.0) if self._in_outage else timeout_s)
        if not delivered:
            logger.warning(
                "batch %s: progress store %s still unreachable; the final state will be written "
                "if it comes back while this process runs",
                self.batch_id,
                redact(self.store.url),
            )
        return delivered

    # -- the delivery thread -------------------------------------------------------------------

    def _deliver(self) -> None:
        backoff = 0.2
        pending: list[_Operation] = []
        outage_reported = False
        while True:
            pending += self._take(wait=not pending)
            if not pending:
                if self._closing.is_set() and self._queue.empty():
                    self._drained.set()
                    return
                self._poll_cancel()
                continue
            try:
                try:
                    pending = self._write(pending)
                except BatchRecordLost:
                    logger.warning("batch %s: Redis lost its record; rewriting it", self.batch_id)
                    self._replay()
                    continue
                if outage_reported:
                    logger.warning("batch %s: progress store is back", self.batch_id)
                    outage_reported = False
                    self._in_outage = False
                backoff = 0.2
            except ProgressStoreUnavailable as error:
                if not outage_reported:
                    logger.warning("batch %s: %s; retrying", self.batch_id, error)
                    outage_reported = True
                    self._in_outage = True
                time.sleep(backoff)
                backoff = min(_MAX_BACKOFF_S, backoff * 2)

    def _take(self, wait: bool) -> list[_Operation]:
        taken: list[_Operation] = []
        try:
            taken.append(
                self._queue.get(timeout=CANCEL_POLL_S) if wait else self._queue.get_nowait()
            )
            while len(taken) < 1000:
                taken.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return taken

    def _write(self, pending: list[_Operation]) -> list[_Operation]:
        """Write operations in order; returns an empty list once all are written (a failure
        leaves the unwritten ones, which are safe to repeat, for the next attempt)."""
        while pending:
            if isinstance(pending[0], _StateChange):
                change = pending[0]
                if change.state == "queued":
                    self._created = {"state": "queued", **change.fields}
                    self.store.create(self.batch_id, self._created)
                else:
                    self.store.set_state(self.batch_id, change.state, change.fields, self.ttl_s)
                    self._last_state = change
                pending = pending[1:]
                continue
            run = 0
            while run < len(pending) and not isinstance(pending[run], _StateChange):
                run += 1
            rows = [row for row in pending[:run] if not isinstance(row, _StateChange)]
            self.store.record_images(self.batch_id, rows)
            pending = pending[run:]
        return pending

    def _replay(self) -> None:
        """Recreate the batch record and every outcome sent so far (idempotent as ever)."""
        self.store.create(self.batch_id, self._created)
        if self._last_state is not None:
            change = self._last_state
            self.store.set_state(self.batch_id, change.state, change.fields, self.ttl_s)
        sent = list(self._sent)
        for start in range(0, len(sent), 1000):
            self.store.record_images(self.batch_id, sent[start : start + 1000])

    def _poll_cancel(self) -> None:
        """While idle: relay a cancel request made elsewhere, and keep the heartbeat going."""
        if self._closing.is_set():
            return
        try:
            if time.monotonic() - self._last_heartbeat > HEARTBEAT_S:
                self.store.heartbeat(self.batch_id)
                self._last_heartbeat = time.monotonic()
            if self._cancel_relayed or self._on_cancel_request is None:
                return
            requested = self.store.cancel_requested(self.batch_id)
        except ProgressStoreUnavailable:
            return  # the write path reports outages; a missed poll is retried in 0.25 s
        if requested:
            self._cancel_relayed = True
            logger.warning("batch %s: cancel requested through the progress store", self.batch_id)
            self._on_cancel_request()


def summary_fields(report_json: dict[str, Any]) -> dict[str, Any]:
    """The end-of-batch fields kept in the batch hash (counts there come from the images)."""
    return {
        "finished_at": time.time(),
        "images_per_s": report_json.get("images_per_s", 0),
        "manifest": report_json.get("manifest", ""),
        "failures_by_code": json.dumps(report_json.get("failures_by_code", {})),
        "timings": json.dumps(report_json.get("timings", {})),
    }
