"""A running batch: the driver thread that feeds the graph in windows.

Runs in the submitting process (a background thread, so ``submit`` returns at once), or inside a
worker for a detached batch. It starts hashing chunks as the ``Window`` allows, reads each
chunk's digests as they arrive, lets the ``Ledger`` pick the images not seen before, chains
validate → resize → encode for those, and hands every result to the ledger. What it submits it
holds in ``HeldFutures``, which is also what ``cancel`` cancels; ``finish`` ends the batch.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

from distributed import Future, as_completed, span
from distributed.comm.core import CommClosedError

from pipeline.cluster import Connection, close_process_cluster
from pipeline.config import PipelineConfig
from pipeline.dashboard.feed import DashboardFeed
from pipeline.dashboard.report import batch_performance_report
from pipeline.driver import finish
from pipeline.driver.crashes import crash_failure
from pipeline.driver.held import HeldFutures
from pipeline.driver.ledger import Ledger
from pipeline.driver.window import Window
from pipeline.errors import ClusterLost, Step
from pipeline.graph import BatchGraph, plan_chunks
from pipeline.inputs import InputFile
from pipeline.keys import parse_key
from pipeline.progress.publisher import FINAL_STATE_WAIT_S, RedisProgress
from pipeline.results import BatchReport, BatchState, BatchStatus, ImageResult
from pipeline.stages.http_fetch import is_http
from pipeline.storage import OutputRoot

logger = logging.getLogger(__name__)


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
        self._feed = DashboardFeed(connection.client, batch_id, root.url)
        self._lock = threading.Lock()  # guards what other threads read or set below
        self._futures = HeldFutures(connection.client, batch_id)
        self._state: BatchState = "running"
        self._error: BaseException | None = None
        self._elapsed: float | None = None
        self._workers_at_start: set[str] = set()  # only the driver thread touches this
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
        # On the dashboard's batch page before submit() returns (see pipeline.dashboard)
        self._feed.send(self.status(), now=True)
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
        """Stop submitting, and cancel every future held (leaves only: see ``HeldFutures``)."""
        if not self._finished.is_set():
            self._futures.cancel()

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
            duplicates_of_failed=self.ledger.duplicates_of_failed(),
            images_with_warnings=self.ledger.images_with_warnings(),
        )

    def _since_start(self) -> float:
        return time.monotonic() - self._started

    # -- the driver thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.progress is not None:
                self.progress.state("running", started_at=time.time())
            with self._shown_on_the_dashboard():
                try:
                    self._drive()
                except CommClosedError as lost:  # a call to the scheduler found it gone
                    raise self._futures.dropped() from lost
        except BaseException as error:
            if isinstance(error, ClusterLost):  # says all there is to say; the caller shows it
                logger.info("batch %s stopped: %s", self.batch_id, error)
            else:
                logger.exception("batch %s stopped", self.batch_id)
            with self._lock:
                self._error = error
        finally:
            self._finish()

    def _drive(self) -> None:
        client = self.connection.client
        workers = client.nthreads()  # worker address → threads
        self._workers_at_start = set(workers)
        threads = sum(workers.values()) or 1
        usable = self.ledger.refuse_unfetchable()
        planned = plan_chunks([self.inputs[index] for index in usable], parallelism=threads)
        chunks = [[usable[position] for position in chunk] for chunk in planned]
        window = Window(chunks, size=max(8, 4 * threads))
        completions = as_completed(loop=client.loop)
        self._submit_hashes(window, completions)
        for finished in completions.batches():
            for future in finished:
                self._take(future, window)
            if self._futures.cancel_requested:
                break
            self._feed.send(self.status())
            self._submit_chains(window, completions)
            self._submit_hashes(window, completions)

    def _take(self, future: Future[Any], window: Window) -> None:
        """One finished future: a hash task waits for its turn, a leaf's rows go to the ledger."""
        key = parse_key(future.key)
        assert key is not None, f"not one of our keys: {future.key!r}"
        if future.status == "cancelled":
            self._futures.forget(future)
            if not self._futures.cancel_requested:
                raise self._futures.dropped()
        elif key.step == "hash":
            window.hashed(key.chunk, future)
        elif future.status == "error":
            self._futures.forget(future)
            with self._futures.reading():
                self._chunk_crashed(window, key.chunk, key.step, future.exception())
        else:
            self._futures.forget(future)
            window.finished(key.chunk)
            with self._futures.reading():
                for result in future.result():
                    self.ledger.record(result)

    def _submit_hashes(self, window: Window, completions: as_completed) -> None:
        tasks = [
            self._graph.hash_task(chunk, [(index, self.inputs[index].source) for index in members])
            for chunk, members in window.to_start()
        ]
        self._futures.submit(tasks, completions)

    def _submit_chains(self, window: Window, completions: as_completed) -> None:
        """validate → resize → encode for the images the ledger has not seen before, chunk by
        chunk in input order (see ``Window.hashed_in_order``)."""
        tasks = []
        for chunk, future in window.hashed_in_order():
            self._futures.forget(future)
            with self._futures.reading():
                if future.status == "error":
                    self._chunk_crashed(window, chunk, "hash", future.exception())
                    continue
                hashed = future.result()
                new = self.ledger.new_images(hashed)
                window.chained(chunk, sorted(new))
                if new:
                    kept = [work for work in hashed if work.index in new]
                    tasks.append(self._graph.process_tasks(chunk, kept, new))
        self._futures.submit(tasks, completions)

    def _chunk_crashed(
        self, window: Window, chunk: int, step: Step, error: BaseException | None
    ) -> None:
        failing, retried = window.crashed(chunk, error)
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

    @contextmanager
    def _shown_on_the_dashboard(self) -> Iterator[None]:
        """Every task of the batch inside one span, so the dashboard's Fine Performance Metrics
        page shows what this batch cost; and, if asked, a performance report of it."""
        with ExitStack() as stack:
            stack.enter_context(span(f"thumbflow-{self.batch_id}"))
            if self.performance_report is not None:
                report = batch_performance_report(
                    self.connection.client,
                    self.performance_report,
                    batch_id=self.batch_id,
                    sources=[item.source for item in self.inputs],
                    output=self.root.url,
                    config=self._graph.config,
                )
                stack.enter_context(report)
            yield

    def _finish(self) -> None:
        try:
            self.ledger.close()
        except Exception as error:
            logger.exception("batch %s: could not finish the manifest", self.batch_id)
            with self._lock:
                self._error = self._error or error
        if self._error is None:
            finish.settle_and_tidy(
                self.connection.client,
                self.root,
                self.batch_id,
                cancelled=self._futures.cancel_requested,
                workers_at_start=self._workers_at_start,
                digests=self.ledger.processed_digests,
            )
        if any(is_http(item.source) for item in self.inputs):  # after cancelled tasks settled
            finish.remove_fetched(self.connection.client, self.batch_id)
        with self._lock:
            self._elapsed = self._since_start()
            if self._error is not None:
                self._state = "failed"
            elif self._futures.cancel_requested:
                self._state = "cancelled"
            else:
                self._state = "done"
            state, stopped_by = self._state, self._error
        summary = self._summary().to_json()
        if stopped_by is not None:
            summary["error"] = str(stopped_by)
        try:
            self._feed.send(self.status(), now=True)
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


# How long exit waits for a cancelled batch to settle: its running tasks stop within a second or
# so and its manifest is written at once, but its final state waits for an unreachable Redis to
# come back (FINAL_STATE_WAIT_S), and an exit must not cut that short.
EXIT_SETTLE_S = 15.0 + FINAL_STATE_WAIT_S

# Python shuts concurrent.futures' executors down before atexit handlers run; Dask's client and
# an in-process scheduler submit to those, so a batch cancelled from an atexit handler fails
# with "cannot schedule new futures after shutdown". threading's own exit hooks run before that
# (latest registered first), and that is where concurrent.futures registers its own shutdown.
_register_exit_hook = getattr(threading, "_register_atexit", atexit.register)
_register_exit_hook(_settle_at_exit)
