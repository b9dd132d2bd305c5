"""Batch progress in Redis: written by the driver (through ``publisher``), readable from any
process (status, watch, list, cancel).

Key schema (``{id}`` is the batch id; every value is a string or JSON, never a pickle)::

    thumbflow:batches                  sorted set: batch id → creation time (for `thumbflow list`)
    thumbflow:batch:{id}               hash: state, total, ok, duplicate, failed, cancelled,
                                       created_at, started_at, finished_at (unix seconds),
                                       heartbeat_at, images_per_s, output, manifest,
                                       cancel_requested, failures_by_code (JSON),
                                       timings (JSON), reused (written when it ends), error
    thumbflow:batch:{id}:images        hash: input index → {"status", "source", "code"} (JSON)
    thumbflow:batch:{id}:events        stream (capped): one entry per image outcome
                                       {index, status, code} and per state change {state}

Counts are derived from per-image records: one Lua script sets an image's entry only if it has
none and bumps the matching counter in the same step, so a task that Dask re-runs after a worker
died can never count twice. The three per-batch keys expire ``ttl`` seconds after the batch ends;
while it runs, a heartbeat every second renews a one-day expiry, so the record of a batch whose
process died without a word still goes away, and readers can tell such a batch from a live one
(``StoredBatch.stale``). The heartbeat is stamped with Redis's clock and readers compare it with
Redis's clock, so the clocks of the driver's and the reader's machines need not agree.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.errors import BatchNotFound, ConfigError, ProgressStoreUnavailable
from pipeline.redaction import redact as redact  # re-exported: imported from here elsewhere
from pipeline.redaction import redact_text
from pipeline.results import FINAL_STATES, BatchStatus

INDEX_KEY = "thumbflow:batches"
EVENTS_MAXLEN = 10_000
RUNNING_EXPIRY_S = 24 * 3600
# The driver beats every second (``publisher.HEARTBEAT_S``); five missed beats in a row and the
# batch's driver is taken to be gone: ``status`` calls it stale, ``watch`` and ``cancel`` stop.
DRIVER_GONE_AFTER_S = 5.0
# Every command gets one try of at most this long: no retries inside redis-py, whose defaults
# (3 or 10 retries with backoff, depending on the version) turn a 2 s timeout into 15-25 s.
# Whoever needs to retry does so itself (the delivery thread, with its own backoff).
SOCKET_TIMEOUT_S = 2.0
COUNTERS = ("ok", "duplicate", "failed", "cancelled")

# KEYS: batch hash, images hash, events stream. ARGV: index, status, image JSON, code, maxlen.
# -1 says the batch record is gone (a Redis restarted without persistence): the writer replays.
_RECORD_IMAGE = """
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then
  return -1
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[3]) == 1 then
  redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*',
             'index', ARGV[1], 'status', ARGV[2], 'code', ARGV[4])
  return 1
end
return 0
"""

# KEYS: batch hash, images hash, events stream. ARGV: expiry. -1 as above: a heartbeat must not
# leave a hash holding nothing but ``heartbeat_at`` where the batch's record was.
_HEARTBEAT = """
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then
  return -1
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[1], 'heartbeat_at', now[1] .. '.' .. string.format('%06d', now[2]))
for _, key in ipairs(KEYS) do
  redis.call('EXPIRE', key, ARGV[1])
end
return 1
"""

# KEYS: batch hash, events stream. ARGV: maxlen, then the final states. A batch that has ended
# keeps its record as it is (0): a request checked against a state read a moment earlier could
# mark a batch cancel-requested after it ended, and recreate its expired events stream.
_REQUEST_CANCEL = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return -1
end
for i = 2, #ARGV do
  if state == ARGV[i] then
    return 0
  end
end
redis.call('HSET', KEYS[1], 'cancel_requested', '1')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'request', 'cancel')
return 1
"""


class BatchRecordLost(Exception):
    """The batch's hash vanished from Redis while the batch ran (a restart without persistence,
    an eviction, a FLUSHALL): whoever writes must recreate it from what it knows."""


def batch_key(batch_id: str) -> str:
    return f"thumbflow:batch:{batch_id}"


def images_key(batch_id: str) -> str:
    return f"{batch_key(batch_id)}:images"


def events_key(batch_id: str) -> str:
    return f"{batch_key(batch_id)}:events"


def connect(url: str) -> redis.Redis:
    """A client with short timeouts and no retries of its own: progress must never stall the
    batch it describes, and a reader of a hung Redis gets its answer in ``SOCKET_TIMEOUT_S``.

    A URL redis-py cannot use raises ``ConfigError`` here, before anything connects, and never
    with redis-py's own words: they quote the URL's pieces, and a '#' typed into a password
    makes one of those pieces half of the password.
    """
    try:
        client = redis.Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=10,
        )
        # Unknown query parameters (?token=) only fail when a connection is made: make one
        # (it does not connect) so that they fail now.
        pool = client.connection_pool
        pool.connection_class(**pool.connection_kwargs)
    except TypeError as error:
        unknown = re.findall(r"argument '(\w+)'", str(error))
        raise ConfigError(
            f"the Redis URL {redact(url)} has a parameter redis-py does not accept "
            f"({', '.join(unknown) or 'unknown'})"
        ) from None
    except ValueError:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                f"the Redis URL {redact(url)} must start with redis://, rediss:// or unix://"
            ) from None
        raise ConfigError(
            f"cannot read the Redis URL {redact(url)}: is it malformed? Characters such as "
            "# @ / ? % or spaces in a password must be percent-encoded "
            "(urllib.parse.quote(password, safe=''))"
        ) from None
    return client


@dataclass(frozen=True)
class StoredBatch:
    """A batch as the progress store describes it."""

    batch_id: str
    fields: dict[str, str]
    read_at: float  # Redis's clock when it was read, unix seconds

    def number(self, name: str) -> float:
        value = self.fields.get(name)
        return float(value) if value not in (None, "") else 0.0

    def count(self, name: str) -> int:
        return int(self.number(name))

    @property
    def state(self) -> str:
        return self.fields.get("state", "unknown")

    def status(self) -> BatchStatus:
        """The counts as a ``BatchStatus``; a record that is not one of ours raises."""
        row = {
            "batch_id": self.batch_id,
            "state": self.state,
            "elapsed_s": self.elapsed_s,
            **{name: self.count(name) for name in ("total", *COUNTERS, "reused")},
        }
        try:
            return BatchStatus.from_json(row)
        except ValueError as error:
            raise ProgressStoreUnavailable(
                f"unreadable record in the progress store: {error}"
            ) from None

    @property
    def last_beat(self) -> float:
        """When its driver was last heard from (0 for a batch no driver has picked up yet)."""
        return self.number("heartbeat_at") or self.number("started_at")

    @property
    def stale(self) -> bool:
        """Not ended by its record, but its driver has not been heard from for
        ``DRIVER_GONE_AFTER_S``: it is gone. (A batch no driver has picked up yet is not.)"""
        beat = self.last_beat
        silent_for = self.read_at - beat
        return self.state not in FINAL_STATES and beat > 0 and silent_for > DRIVER_GONE_AFTER_S

    @property
    def elapsed_s(self) -> float:
        started = self.number("started_at") or self.number("created_at")
        finished = self.number("finished_at") or time.time()
        return max(0.0, finished - started)


class RedisStore:
    """Reads and writes batch records; every Redis error surfaces as ``ProgressStoreUnavailable``
    with the URL's password redacted."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._client = connect(url)
        self._record = self._client.register_script(_RECORD_IMAGE)
        self._heartbeat = self._client.register_script(_HEARTBEAT)
        self._request_cancel = self._client.register_script(_REQUEST_CANCEL)

    def __repr__(self) -> str:
        return f"RedisStore({redact(self.url)!r})"

    @contextmanager
    def _reaching_redis(self) -> Iterator[None]:
        """Every Redis error surfaces as ``ProgressStoreUnavailable``, password redacted."""
        try:
            yield
        except redis.RedisError as error:
            # redis-py's messages name hosts, not passwords; redacted all the same, in case.
            reason = f"{type(error).__name__}: {redact_text(str(error), self.url)}"
            raise ProgressStoreUnavailable(
                f"progress store unavailable at {redact(self.url)} ({reason})"
            ) from error

    def ping(self) -> None:
        with self._reaching_redis():
            self._client.ping()

    # -- writing (the submitting process) ---------------------------------------------------

    def create(self, batch_id: str, fields: dict[str, Any]) -> None:
        created = float(fields.get("created_at", time.time()))
        with self._reaching_redis(), self._client.pipeline() as pipe:
            pipe.hset(batch_key(batch_id), mapping={k: str(v) for k, v in fields.items()})
            pipe.hsetnx(batch_key(batch_id), "cancel_requested", "0")
            for counter in COUNTERS:
                pipe.hsetnx(batch_key(batch_id), counter, "0")
            pipe.zadd(INDEX_KEY, {batch_id: created})
            for key in (batch_key(batch_id), images_key(batch_id), events_key(batch_id)):
                pipe.expire(key, RUNNING_EXPIRY_S)
            pipe.execute()

    def record_images(self, batch_id: str, rows: list[tuple[int, str, str, str]]) -> int:
        """Record ``(index, status, source, code)`` outcomes; returns how many were new."""
        keys = [batch_key(batch_id), images_key(batch_id), events_key(batch_id)]
        with self._reaching_redis(), self._client.pipeline(transaction=False) as pipe:
            for index, status, source, code in rows:
                image = json.dumps({"status": status, "source": source, "code": code})
                self._record(
                    keys=keys,
                    args=[index, status, image, code, EVENTS_MAXLEN],
                    client=pipe,
                )
            answers = [int(answer) for answer in pipe.execute()]
        if -1 in answers:
            raise BatchRecordLost(batch_id)
        return sum(answers)

    def heartbeat(self, batch_id: str) -> None:
        """The batch's process is alive: note the time and push its records' expiry back."""
        keys = [batch_key(batch_id), images_key(batch_id), events_key(batch_id)]
        with self._reaching_redis():
            answer = self._heartbeat(keys=keys, args=[RUNNING_EXPIRY_S])
        if int(answer) == -1:
            raise BatchRecordLost(batch_id)

    def forget_images(self, batch_id: str) -> None:
        """Drop the per-image records, before they are all written again with the counts."""
        with self._reaching_redis():
            self._client.delete(images_key(batch_id))

    def set_state(self, batch_id: str, state: str, fields: dict[str, Any], ttl_s: float) -> None:
        """Move the batch to ``state``; a final state starts the expiry clock on its keys."""
        with self._reaching_redis():
            if not self._client.hexists(batch_key(batch_id), "total"):
                raise BatchRecordLost(batch_id)
            with self._client.pipeline() as pipe:
                mapping: dict[Any, Any] = {"state": state}
                mapping.update((k, str(v)) for k, v in fields.items())
                pipe.hset(batch_key(batch_id), mapping=mapping)
                pipe.xadd(
                    events_key(batch_id), {"state": state}, maxlen=EVENTS_MAXLEN, approximate=True
                )
                if state in FINAL_STATES:
                    for key in (batch_key(batch_id), images_key(batch_id), events_key(batch_id)):
                        pipe.expire(key, max(1, int(ttl_s)))
                pipe.execute()

    # -- reading and requests (any process) -------------------------------------------------

    def batch(self, batch_id: str) -> StoredBatch:
        with self._reaching_redis(), self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(batch_key(batch_id))
            pipe.time()
            fields, (seconds, microseconds) = pipe.execute()
        if not fields:
            raise BatchNotFound(f"no batch {batch_id!r} in {redact(self.url)} (or it expired)")
        return StoredBatch(batch_id, fields, read_at=seconds + microseconds / 1e6)

    def _now(self) -> float:
        """Redis's clock, the one heartbeats are stamped with."""
        seconds, microseconds = self._client.time()
        return float(seconds + microseconds / 1e6)

    def cancel_requested(self, batch_id: str) -> bool:
        with self._reaching_redis():
            return self._client.hget(batch_key(batch_id), "cancel_requested") == "1"

    def request_cancel(self, batch_id: str) -> StoredBatch:
        """Ask the process running the batch to cancel it; it notices within a quarter of a
        second, however busy. Returns the batch as it stood. A batch that has already ended is
        left untouched (no request is recorded), and returned in its final state."""
        stored = self.batch(batch_id)
        if stored.state in FINAL_STATES:
            return stored
        keys = [batch_key(batch_id), events_key(batch_id)]
        with self._reaching_redis():
            requested = self._request_cancel(keys=keys, args=[EVENTS_MAXLEN, *FINAL_STATES])
        if requested != 1:  # it ended (or expired) since we read it
            return self.batch(batch_id)
        return stored

    def recent(self, limit: int = 20) -> list[StoredBatch]:
        """Newest first; ids whose keys have expired are dropped from the index as we go."""
        with self._reaching_redis():
            ids = cast(list[str], self._client.zrevrange(INDEX_KEY, 0, max(0, limit * 2)))
            now = self._now()
            found = []
            for batch_id in ids:
                fields = cast(dict[str, str], self._client.hgetall(batch_key(batch_id)))
                if fields:
                    found.append(StoredBatch(batch_id, fields, read_at=now))
                else:
                    self._client.zrem(INDEX_KEY, batch_id)
            return found[:limit]

    def follow(self, batch_id: str, block_ms: int = 500) -> Iterator[list[dict[str, str]]]:
        """The batch's events from now on, a list per wait of at most ``block_ms`` (empty when
        nothing happened, so a watcher can refresh); ends after a final state or if the batch's
        keys have expired."""
        key = events_key(batch_id)
        with self._reaching_redis():
            last = cast(list[tuple[str, dict[str, str]]], self._client.xrevrange(key, count=1))
        after = last[0][0] if last else "0-0"
        while True:
            with self._reaching_redis():
                answer = self._client.xread({key: after}, block=block_ms, count=1000)
            events: list[dict[str, str]] = []
            for _, entries in cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], answer):
                for entry_id, event in entries:
                    after = entry_id
                    events.append(event)
            yield events
            if any(event.get("state") in FINAL_STATES for event in events):
                return
            if not events and not self._exists(batch_id):
                return

    def _exists(self, batch_id: str) -> bool:
        with self._reaching_redis():
            return bool(self._client.exists(batch_key(batch_id)))
