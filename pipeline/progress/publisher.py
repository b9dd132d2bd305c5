"""The progress callback: the driver calls it as each image's outcome arrives. Runs in the
driver's process, with a delivery thread of its own.

Without a Redis URL the batch's own counters (``BatchHandle.status``) are the whole story. With
one, ``RedisProgress`` forwards every outcome and state change to the store so that any process
can read, follow or cancel the batch. Writes go through a queue and a background thread: Redis
being slow or gone never slows or stops the images, the thread retries with backoff, and the
final state lands when Redis is back (the end of the batch waits up to ``FINAL_STATE_WAIT_S``
for that). The same thread keeps time: whatever the load, it writes the heartbeat every
``HEARTBEAT_S`` and looks for a cancel request made elsewhere every ``CANCEL_POLL_S``.
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
from pipeline.progress.store import (
    DRIVER_GONE_AFTER_S,
    RUNNING_EXPIRY_S,
    BatchRecordLost,
    RedisStore,
    redact,
)
from pipeline.results import FINAL_STATES, ImageResult, counted_as

logger = logging.getLogger(__name__)

DEFAULT_TTL_S = 7 * 24 * 3600
CANCEL_POLL_S = 0.25
HEARTBEAT_S = 1.0
# How long the end of a batch waits for an unreachable Redis to come back and take its final
# state, when Redis holds a record of the batch that would otherwise say "running" until it
# expires. A store that never had anything of the batch gets a short wait only.
FINAL_STATE_WAIT_S = 30.0
_NEVER_REACHED_WAIT_S = 2.0
_MAX_BACKOFF_S = 1.0  # an outage costs a failed connection a second; the record is back soon
_MAX_BATCH = 1000  # operations per round trip


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
        final_state_wait_s: float = FINAL_STATE_WAIT_S,
    ) -> None:
        self.store = store
        self.batch_id = batch_id
        self.ttl_s = ttl_s
        self.final_state_wait_s = final_state_wait_s
        self._on_cancel_request = on_cancel_request
        self._queue: queue.Queue[_Operation] = queue.Queue()
        self._closing = threading.Event()
        self._drained = threading.Event()
        self._cancel_relayed = False
        self._in_outage = False
        self._backoff_s = 0.2
        self._next_heartbeat = 0.0  # monotonic times: both are due at once
        self._next_cancel_poll = 0.0
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
        # Redis keeps one counter per tally: a copy of a failed input is counted as failed.
        row = (result.index, counted_as(result.status), result.source, code)
        self._sent.append(row)
        self._queue.put(row)

    def close(self, timeout_s: float) -> bool:
        """Wait for everything queued to reach Redis: up to ``timeout_s``, or, while Redis is
        unreachable, up to ``final_state_wait_s`` if it holds a record of this batch (and
        2 s if it never did). If that is not enough, say so; the thread keeps trying in the
        background for as long as this process lives."""
        self._closing.set()
        started = time.monotonic()
        announced = False
        while not self._drained.wait(0.1):
            if self._in_outage and not announced and self._created:
                announced = True
                logger.warning(
                    "batch %s: waiting up to %.0f s for the progress store to come back and "
                    "take the final state",
                    self.batch_id,
                    self.final_state_wait_s,
                )
            if time.monotonic() - started > self._allowed_wait(timeout_s):
                self._give_up()
                return False
        return True

    def _allowed_wait(self, timeout_s: float) -> float:
        if not self._in_outage:
            return timeout_s
        if not self._created:  # nothing of this batch is there to be left wrong
            return min(timeout_s, _NEVER_REACHED_WAIT_S)
        return self.final_state_wait_s

    def _give_up(self) -> None:
        if not self._created:
            logger.warning(
                "batch %s: the progress store at %s was never reachable; nothing of this batch "
                "was recorded there",
                self.batch_id,
                redact(self.store.url),
            )
            return
        logger.warning(
            "batch %s: the progress store at %s never came back (waited %.0f s); its record "
            "there may still say the batch runs: it reads as stale (driver gone) after %.0f s "
            "and expires within %.0f h",
            self.batch_id,
            redact(self.store.url),
            self.final_state_wait_s,
            DRIVER_GONE_AFTER_S,
            RUNNING_EXPIRY_S / 3600,
        )

    # -- the delivery thread -------------------------------------------------------------------

    def _deliver(self) -> None:
        pending: list[_Operation] = []
        while True:
            pending += self._take(wait_s=0.0 if pending else self._until_next_check())
            if pending:
                pending = self._write_or_back_off(pending)
            elif self._closing.is_set() and self._queue.empty():
                self._drained.set()
                return
            self._keep_time()

    def _until_next_check(self) -> float:
        """How long the thread may wait for work before the heartbeat or the cancel poll is due."""
        due = min(self._next_heartbeat, self._next_cancel_poll)
        return min(CANCEL_POLL_S, max(0.0, due - time.monotonic()))

    def _take(self, wait_s: float) -> list[_Operation]:
        taken: list[_Operation] = []
        try:
            taken.append(self._queue.get(timeout=wait_s) if wait_s else self._queue.get_nowait())
            while len(taken) < _MAX_BATCH:
                taken.append(self._queue.get_nowait())
        except queue.Empty:
            pass
        return taken

    def _write_or_back_off(self, pending: list[_Operation]) -> list[_Operation]:
        """Write what is pending; returns what is left (everything, after a failure)."""
        try:
            try:
                pending = self._write(pending)
            except BatchRecordLost:
                self._replay()
                return pending
        except ProgressStoreUnavailable as error:
            self._outage(error)
            return pending
        self._reached()
        return pending

    def _outage(self, error: ProgressStoreUnavailable) -> None:
        if not self._in_outage:
            logger.warning("batch %s: %s; retrying", self.batch_id, error)
            self._in_outage = True
        time.sleep(self._backoff_s)
        self._backoff_s = min(_MAX_BACKOFF_S, self._backoff_s * 2)

    def _reached(self) -> None:
        if self._in_outage:
            logger.warning("batch %s: progress store is back", self.batch_id)
            self._in_outage = False
        self._backoff_s = 0.2

    def _write(self, pending: list[_Operation]) -> list[_Operation]:
        """Write operations in order; returns an empty list once all are written (a failure
        leaves the unwritten ones, which are safe to repeat, for the next attempt)."""
        while pending:
            if isinstance(pending[0], _StateChange):
                change = pending[0]
                if change.state == "queued":
                    self.store.create(self.batch_id, {"state": "queued", **change.fields})
                    self._created = {"state": "queued", **change.fields}
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
        """Rewrite the batch record from what this process sent: its fields, its last state and
        every outcome. The per-image records go first: when only the batch's hash was lost (an
        eviction), the images still there would keep themselves from being counted again."""
        logger.warning("batch %s: Redis lost its record; rewriting it", self.batch_id)
        self.store.forget_images(self.batch_id)
        self.store.create(self.batch_id, self._created)
        if self._last_state is not None:
            change = self._last_state
            self.store.set_state(self.batch_id, change.state, change.fields, self.ttl_s)
        sent = list(self._sent)
        for start in range(0, len(sent), _MAX_BATCH):
            self.store.record_images(self.batch_id, sent[start : start + _MAX_BATCH])
        if self._still_running():
            self.store.heartbeat(self.batch_id)  # else it reads as stale until the next beat

    # -- on a clock, however busy the queue ------------------------------------------------------

    def _keep_time(self) -> None:
        """The heartbeat and the cancel poll, each when due. Runs between writes, so a steady
        stream of results can never put them off. In an outage only the heartbeat is tried (once
        a second, and its success ends the outage even when nothing else is left to write);
        failures are quiet, the write path reports outages."""
        now = time.monotonic()
        beat_due, poll_due = now >= self._next_heartbeat, now >= self._next_cancel_poll
        # the next ones are due on the clock whether or not these can be done
        if beat_due:
            self._next_heartbeat = now + HEARTBEAT_S
        if poll_due:
            self._next_cancel_poll = now + CANCEL_POLL_S
        if not self._created:
            return  # the batch's record is not there yet
        try:
            if beat_due and self._still_running():
                self._beat()
            if poll_due and not self._in_outage:
                self._poll_cancel()
        except ProgressStoreUnavailable:
            pass

    def _beat(self) -> None:
        try:
            self.store.heartbeat(self.batch_id)
        except BatchRecordLost:
            self._replay()
        self._reached()

    def _still_running(self) -> bool:
        """Beat until a final state is written: a beat after it would push back its expiry."""
        return self._last_state is None or self._last_state.state not in FINAL_STATES

    def _poll_cancel(self) -> None:
        if self._cancel_relayed or self._on_cancel_request is None or self._closing.is_set():
            return
        if self.store.cancel_requested(self.batch_id):
            self._cancel_relayed = True
            logger.warning("batch %s: cancel requested through the progress store", self.batch_id)
            self._on_cancel_request()


def summary_fields(report_json: dict[str, Any]) -> dict[str, Any]:
    """The end-of-batch fields kept in the batch hash (counts there come from the images)."""
    return {
        "finished_at": time.time(),
        "images_per_s": report_json.get("images_per_s", 0),
        "reused": report_json.get("reused", 0),
        "manifest": report_json.get("manifest", ""),
        "failures_by_code": json.dumps(report_json.get("failures_by_code", {})),
        "timings": json.dumps(report_json.get("timings", {})),
    }
