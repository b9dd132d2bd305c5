"""A running batch: the driver thread that feeds the graph in windows.

Runs in the submitting process (a background thread, so ``submit`` returns at once), or inside a
worker for a detached batch. It keeps a bounded window of chunks in flight (scheduler and client
memory stay flat however large the batch), reads each chunk's digests as they arrive, lets the
ledger resolve duplicates, chains validate → resize → encode for the new images, and hands every
result to the ledger. It holds two kinds of futures only: hash tasks whose chain is not yet
submitted, and the encode (leaf) task of each chain. Those are exactly the ones ``cancel`` may
cancel: cancelling a held upstream future whose dependents are not held trips an assertion in the
scheduler and disconnects the client (docs/design.md).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import ExitStack, contextmanager
from typing import Any

from distributed import Future, as_completed, performance_report, span

from pipeline.cluster import Connection, close_process_cluster
from pipeline.config import PipelineConfig
from pipeline.driver import finish
from pipeline.driver.crashes import Quarantine, crash_failure
from pipeline.driver.ledger import Ledger
from pipeline.errors import ClusterError, Step
from pipeline.graph import BatchGraph, plan_chunks
from pipeline.inputs import InputFile
from pipeline.keys import parse_key
from pipeline.progress.publisher import RedisProgress
from pipeline.results import BatchReport, BatchState, BatchStatus, ImageResult
from pipeline.storage import OutputRoot
from pipeline.worker.tasks import ImageWork

logger = logging.getLogger(__name__)

Chain = tuple[
    int, list[ImageWork], frozenset[int]
]  # chunk, its hash results, the images to process


class BatchRun:
    """Drives one batch on a connected cluster; use it through ``BatchHandle``."""

    def __init__(
        self,
        *,
        batch_id: str,
        inputs: Sequence[InputFile],
        config: PipelineConfig,
        root: OutputRoot,
        connection: Connection,
        performance_report: str | None = None,
    ) -> None:
        self.batch_id = batch_id
        self.inputs = inputs
        self.root = root
        self.connection = connection
        self.performance_report = performance_report
        self.ledger = Ledger(batch_id, inputs, root)
        self._graph = BatchGraph(batch_id, config, root)
        self._quarantine = Quarantine()
        self._lock = threading.Lock()  # guards what other threads read or set below
        self._held: dict[Any, Future[Any]] = {}
        self._cancel_requested = False
        self._state: BatchState = "running"
        self._error: BaseException | None = None
        self._elapsed: float | None = None
        # Only the driver thread touches these.
        self._in_flight: dict[int, list[int]] = {}  # chunk → its input indices still unresolved
        self._pending_chunks: deque[tuple[int, list[int]]] = deque()
        self._next_chunk_id = 0
        self._hashed: dict[int, Future[Any]] = {}  # hash tasks done, waiting for their turn
        self._next_to_resolve = 0
        self._workers_at_start: set[str] = set()
        self._started = time.monotonic()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"thumbflow-{batch_id}", daemon=True)

    @property
    def progress(self) -> RedisProgress | None:
        return self.ledger.progress

    @progress.setter
    def progress(self, progress: RedisProgress | None) -> None:
        self.ledger.progress = progress

    # -- control, from any thread ------------------------------------------------------------

    def start(self) -> None:
        if self.progress is not None:
            self.progress.start(
                {
                    "total": len(self.inputs),
                    "output": self.root.url,
                    "manifest": self.ledger.manifest,
                    "host": socket.gethostname(),
                    "pid": os.getpid(),
                }
            )
        _running.add(self)
        self._thread.start()

    @property
    def dashboard_link(self) -> str | None:
        return self.connection.dashboard_link

    def status(self) -> BatchStatus:
        counts = self.ledger.counts()
        with self._lock:
            elapsed = self._elapsed if self._elapsed is not None else self._since_start()
            state = self._state
        return BatchStatus(self.batch_id, state, len(self.inputs), elapsed_s=elapsed, **counts)

    def cancel(self) -> None:
        """Stop submitting, and cancel every future we hold (leaves only: see module doc)."""
        with self._lock:
            if self._cancel_requested or self._finished.is_set():
                return
            self._cancel_requested = True
            held = list(self._held.values())
        logger.info("batch %s: cancelling %d futures", self.batch_id, len(held))
        self.connection.client.cancel(held)

    def wait(self, timeout: float | None = None) -> bool:
        return self._finished.wait(timeout)

    def report(self) -> BatchReport:
        """The summary; raises the batch's own error if it stopped on one."""
        with self._lock:
            error = self._error
        if error is not None:
            raise error
        return self._summary()

    def _summary(self) -> BatchReport:
        return BatchReport(
            status=self.status(),
            manifest=self.ledger.manifest,
            output=self.root.url,
            failures_by_code=self.ledger.failures_by_code(),
            timings=self.ledger.timings(),
        )

    def _since_start(self) -> float:
        return time.monotonic() - self._started

    # -- the driver thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.progress is not None:
                self.progress.state("running", started_at=time.time())
            with self._dashboard_context():
                self._drive()
        except BaseException as error:
            logger.exception("batch %s stopped", self.batch_id)
            with self._lock:
                self._error = error
        finally:
            self._finish()

    @contextmanager
    def _dashboard_context(self) -> Iterator[None]:
        """Every task of the batch inside one span, so the dashboard's Fine Performance Metrics
        page shows what this batch cost; and, if asked, a performance report of it."""
        with ExitStack() as stack:
            stack.enter_context(span(f"thumbflow-{self.batch_id}"))
            if self.performance_report is not None:
                # performance_report() looks for "the current client"; ours is not the default
                stack.enter_context(self.connection.client.as_current())
                stack.enter_context(performance_report(filename=self.performance_report))
            yield

    def _drive(self) -> None:
        client = self.connection.client
        workers = client.nthreads()  # worker address → threads
        self._workers_at_start = set(workers)
        threads = sum(workers.values()) or 1
        chunks = plan_chunks(self.inputs, parallelism=threads)
        self._pending_chunks.extend(enumerate(chunks))
        self._next_chunk_id = len(chunks)
        window = max(8, 4 * threads)
        completions = as_completed(loop=client.loop)
        self._submit_hashes(window, completions)
        for finished in completions.batches():
            for future in finished:
                self._take(future)
            if self._cancel_requested:
                break
            self._submit_chains(self._resolve_hashed_in_order(), completions)
            self._submit_hashes(window, completions)

    def _take(self, future: Future[Any]) -> None:
        """One finished future: a hash task waits for its turn, a leaf's rows go to the ledger."""
        key = parse_key(future.key)
        assert key is not None, f"not one of our keys: {future.key!r}"
        if future.status == "cancelled":
            self._forget(future)
            if not self._cancel_requested:
                raise self._work_dropped()
        elif key.step == "hash":
            self._hashed[key.chunk] = future  # resolved in input order
        elif future.status == "error":
            self._forget(future)
            with self._unless_cancelled():
                self._chunk_crashed(key.chunk, key.step, future.exception())
        else:
            self._forget(future)
            self._in_flight.pop(key.chunk, None)
            with self._unless_cancelled():
                for result in future.result():
                    self.ledger.record(result)

    def _work_dropped(self) -> ClusterError:
        return ClusterError(
            f"batch {self.batch_id}: the cluster dropped its work "
            "(scheduler restarted or connection lost); rerun to resume"
        )

    @contextmanager
    def _unless_cancelled(self) -> Iterator[None]:
        """Around reading a future. ``cancel`` runs on another thread (the user's, the progress
        store's, atexit), so a future found finished can be cancelled by the time it is read:
        that is one more cancelled chunk, whose images the ledger records as cancelled at the
        end. Only if nobody asked to cancel did the cluster drop the work."""
        try:
            yield
        except CancelledError:
            if not self._cancel_requested:
                raise self._work_dropped() from None

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._held.pop(future.key, None)

    def _resolve_hashed_in_order(self) -> list[Chain]:
        """Resolve duplicates chunk by chunk in input order, so the first of identical inputs
        is always the earliest one, however the hash tasks happened to finish."""
        chains = []
        while self._next_to_resolve in self._hashed:
            chunk = self._next_to_resolve
            self._next_to_resolve += 1
            future = self._hashed.pop(chunk)
            self._forget(future)
            with self._unless_cancelled():
                if future.status == "error":
                    self._chunk_crashed(chunk, "hash", future.exception())
                    continue
                hashed = future.result()
                new = self.ledger.new_images(hashed)
                if new:
                    chains.append((chunk, [work for work in hashed if work.index in new], new))
                    self._in_flight[chunk] = sorted(new)
                else:
                    self._in_flight.pop(chunk, None)
        return chains

    def _submit_hashes(self, window: int, completions: as_completed) -> None:
        """Start hashing further chunks while fewer than ``window`` are in flight: enough to
        keep every thread busy while the client reacts, few enough to keep memory flat."""
        if not self._pending_chunks and not self._in_flight:
            # A suspect of a crash is retried only when nothing else is in flight: Dask blames
            # every task a dying worker held, so alone an innocent simply succeeds.
            suspect = self._quarantine.next_alone()
            if suspect is not None:
                self._pending_chunks.append((self._next_chunk_id, [suspect]))
                self._next_chunk_id += 1
        tasks = []
        while len(self._in_flight) < window and self._pending_chunks:
            chunk, members = self._pending_chunks.popleft()
            self._in_flight[chunk] = members
            items = [(index, self.inputs[index].source) for index in members]
            tasks.append(self._graph.hash_task(chunk, items))
        self._submit(tasks, completions)

    def _submit_chains(self, chains: list[Chain], completions: as_completed) -> None:
        tasks = [self._graph.process_tasks(chunk, hashed, new) for chunk, hashed, new in chains]
        self._submit(tasks, completions)

    def _submit(self, tasks: list[Any], completions: as_completed) -> None:
        if not tasks:
            return
        # optimize_graph=False: the scheduler's cull of a long list is quadratic (docs/design.md).
        futures = self.connection.client.compute(tasks, optimize_graph=False)
        with self._lock:
            self._held.update((future.key, future) for future in futures)
            cancelled_meanwhile = self._cancel_requested
        completions.update(futures)
        if cancelled_meanwhile:
            self.connection.client.cancel(futures)

    def _chunk_crashed(self, chunk: int, step: Step, error: BaseException | None) -> None:
        members = self._in_flight.pop(chunk, [])
        retried = len(members) - len(failing := self._quarantine.admit(members, error))
        if retried:
            logger.warning(
                "batch %s: chunk %d killed its worker; %d images will be retried alone",
                self.batch_id,
                chunk,
                retried,
            )
        for index in failing:
            source = self.inputs[index].source
            failure = crash_failure(source, step, error)
            self.ledger.record(ImageResult(index, source, "failed", failure=failure))

    def _finish(self) -> None:
        try:
            self.ledger.close()
        except Exception as error:
            logger.exception("batch %s: could not finish the manifest", self.batch_id)
            with self._lock:
                self._error = self._error or error
        client = self.connection.client
        if self._cancel_requested and self._error is None:
            finish.wait_until_no_task_runs(client, self.batch_id)
        live = finish.live_workers(client)
        if self._error is None and live is not None and not self._workers_at_start <= live:
            digests = self.ledger.processed_digests()  # a worker left: it may have left orphans
            finish.remove_orphaned_temporaries(self.root, self.batch_id, digests, live)
        with self._lock:
            self._elapsed = self._since_start()
            if self._error is not None:
                self._state = "failed"
            elif self._cancel_requested:
                self._state = "cancelled"
            else:
                self._state = "done"
            state, stopped_by = self._state, self._error
        summary = self._summary().to_json()
        if stopped_by is not None:
            summary["error"] = str(stopped_by)
        try:
            finish.publish_summary(self.root, self.batch_id, summary, state, self.progress)
        finally:
            self.connection.close()
            _running.discard(self)
            self._finished.set()


_running: weakref.WeakSet[BatchRun] = weakref.WeakSet()


def _settle_at_exit() -> None:
    """At interpreter exit, cancel what still runs and wait for it to settle, so every manifest
    is completed and temporary files are gone, instead of threads dying mid-write; then close
    this process's LocalCluster."""
    runs = list(_running)
    for run in runs:
        run.cancel()
    for run in runs:
        run.wait(timeout=EXIT_SETTLE_S)
    close_process_cluster()


# How long exit waits for a cancelled batch to settle (its running tasks to stop, its manifest
# and final state to be written).
EXIT_SETTLE_S = 15.0

# Python shuts concurrent.futures' executors down before atexit handlers run; Dask's client and
# an in-process scheduler submit to those, so a batch cancelled from an atexit handler fails
# with "cannot schedule new futures after shutdown". threading's own exit hooks run before that
# (latest registered first), and that is where concurrent.futures registers its own shutdown.
_register_exit_hook = getattr(threading, "_register_atexit", atexit.register)
_register_exit_hook(_settle_at_exit)
