"""A running batch: the driver that feeds the graph in windows, and the handle users hold.

The driver runs in a background thread of the submitting process so ``submit`` returns at once.
It keeps a bounded window of chunks in flight (scheduler and client memory stay flat however
large the batch), reads each chunk's digests as they arrive, resolves duplicates, chains the
validate → resize → encode tasks for the new images, and streams every result into the manifest
and the status counters. It holds only two kinds of futures: hash tasks whose chain is not yet
submitted, and the encode (leaf) task of each chain; those are exactly the ones ``cancel`` may
cancel, since cancelling a held upstream future trips the scheduler (DESIGN.md).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import socket
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError
from contextlib import ExitStack, contextmanager
from typing import Any

from distributed import Future, KilledWorker, as_completed, performance_report, span

from pipeline.cancellation import running_tasks
from pipeline.cluster import Connection
from pipeline.config import PipelineConfig
from pipeline.dedup import DuplicateTracker
from pipeline.errors import ClusterError, Failure, Step, ThumbflowError
from pipeline.graph import STEPS, BatchGraph, plan_chunks
from pipeline.inputs import InputFile
from pipeline.manifest import ManifestWriter, summary_path
from pipeline.metrics import TimingCollector
from pipeline.progress import RedisProgress, summary_fields
from pipeline.records import ImageResult, Status
from pipeline.report import BatchReport, BatchState, BatchStatus
from pipeline.storage import OutputRoot, image_folder
from pipeline.tasks import ImageWork

logger = logging.getLogger(__name__)


def _chunk_of(key: Any) -> tuple[str, int]:
    """``("encode-<token>", 7)`` → ``("encode", 7)``."""
    name, chunk = key
    return str(name).split("-", 1)[0], int(chunk)


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
        progress: RedisProgress | None = None,
        performance_report: str | None = None,
    ) -> None:
        self.batch_id = batch_id
        self.progress = progress
        self.performance_report = performance_report
        self.inputs = inputs
        self.config = config
        self.root = root
        self.connection = connection
        self._graph = BatchGraph(batch_id, config, root)
        self._manifest = ManifestWriter(root, batch_id, len(inputs))
        self._duplicates = DuplicateTracker()
        self._timings = TimingCollector()
        self._failure_codes: Counter[str] = Counter()
        self._counts: Counter[Status] = Counter()
        self._lock = threading.Lock()
        self._held: dict[Any, Future[Any]] = {}
        self._chunk_members: dict[int, list[int]] = {}  # chunks in flight → their input indices
        self._pending_chunks: deque[tuple[int, list[int]]] = deque()
        self._next_chunk_id = 0
        self._quarantine: deque[int] = deque()  # images whose chunk killed workers, to retry
        self._quarantined: set[int] = set()
        self._hashed: dict[int, Future[Any]] = {}  # hash tasks done, waiting for their turn
        self._next_to_resolve = 0
        self._cancel_requested = False
        self._state: BatchState = "running"
        self._error: BaseException | None = None
        self._started = time.monotonic()
        self._workers_at_start: set[str] = set()
        self._elapsed: float | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"thumbflow-{batch_id}", daemon=True)

    # -- control, from any thread ------------------------------------------------------------

    def start(self) -> None:
        if self.progress is not None:
            self.progress.start(
                {
                    "total": len(self.inputs),
                    "output": self.root.url,
                    "manifest": self._manifest.path,
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
        with self._lock:
            elapsed = (
                self._elapsed if self._elapsed is not None else time.monotonic() - self._started
            )
            return BatchStatus(
                self.batch_id,
                self._state,
                len(self.inputs),
                self._counts["ok"],
                self._counts["duplicate"],
                self._counts["failed"],
                self._counts["cancelled"],
                elapsed,
            )

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
        """The summary; raises the batch's infrastructure error if it stopped on one."""
        if self._error is not None:
            raise self._error
        return self._summary()

    def _summary(self) -> BatchReport:
        return BatchReport(
            status=self.status(),
            manifest=self._manifest.path,
            output=self.root.url,
            failures_by_code=dict(self._failure_codes),
            timings=self._timings.summary(),
        )

    # -- the driver thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.progress is not None:
                self.progress.state("running", started_at=time.time())
            with self._dashboard_context():
                self._drive()
        except BaseException as error:
            logger.exception("batch %s stopped", self.batch_id)
            self._error = (
                error
                if isinstance(error, ThumbflowError)
                else ClusterError(f"batch {self.batch_id} stopped: {type(error).__name__}: {error}")
            )
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
                step, chunk = _chunk_of(future.key)
                if future.status == "cancelled":
                    self._forget(future)
                    if not self._cancel_requested:
                        raise self._work_dropped()
                elif step == "hash":
                    # Held until its chain is submitted; resolved in input order below.
                    self._hashed[chunk] = future
                elif future.status == "error":
                    self._forget(future)
                    with self._unless_cancelled():
                        self._chunk_failed(chunk, step, future.exception())
                else:
                    self._forget(future)
                    self._chunk_members.pop(chunk, None)
                    with self._unless_cancelled():
                        for result in future.result():
                            self._record(result)
            if self._cancel_requested:
                break
            self._submit_chains(self._resolve_hashed_in_order(), completions)
            self._submit_hashes(window, completions)

    def _work_dropped(self) -> ClusterError:
        return ClusterError(
            f"batch {self.batch_id}: the cluster dropped its work "
            "(scheduler restarted or connection lost); rerun to resume"
        )

    @contextmanager
    def _unless_cancelled(self) -> Iterator[None]:
        """Around reading a future. ``cancel`` runs on another thread (the user's, the progress
        store's, atexit), so a future found finished can be cancelled by the time it is read:
        that is one more cancelled chunk, whose images ``_finish`` records as cancelled. Only
        if nobody asked to cancel did the cluster drop the work."""
        try:
            yield
        except CancelledError:
            if not self._cancel_requested:
                raise self._work_dropped() from None

    def _forget(self, future: Future[Any]) -> None:
        with self._lock:
            self._held.pop(future.key, None)

    def _resolve_hashed_in_order(self) -> list[tuple[int, list[ImageWork], frozenset[int]]]:
        """Resolve duplicates chunk by chunk in input order, so the first of identical inputs
        is always the earliest one, however the hash tasks happened to finish."""
        chained = []
        while self._next_to_resolve in self._hashed:
            chunk = self._next_to_resolve
            self._next_to_resolve += 1
            future = self._hashed.pop(chunk)
            self._forget(future)
            with self._unless_cancelled():
                if future.status == "error":
                    self._chunk_failed(chunk, "hash", future.exception())
                    continue
                hashed = future.result()
                keep = self._resolve_duplicates(hashed)
                if keep:
                    chained.append((chunk, [work for work in hashed if work.index in keep], keep))
                    self._chunk_members[chunk] = sorted(keep)
                else:
                    self._chunk_members.pop(chunk, None)
        return chained

    def _submit_hashes(self, window: int, completions: as_completed) -> None:
        """Start hashing further chunks while fewer than ``window`` are in flight: enough to
        keep every thread busy while the client reacts, few enough to keep memory flat."""
        tasks = []
        if not self._pending_chunks and not self._chunk_members and self._quarantine:
            # Dask blames every task a dying worker held, queued ones included; so a suspect is
            # retried only when nothing else is in flight: an innocent then simply succeeds,
            # and a culprit takes down no one else's image.
            self._pending_chunks.append((self._next_chunk_id, [self._quarantine.popleft()]))
            self._next_chunk_id += 1
        while len(self._chunk_members) < window:
            if not self._pending_chunks:
                break
            chunk, members = self._pending_chunks.popleft()
            self._chunk_members[chunk] = members
            items = [(index, self.inputs[index].source) for index in members]
            tasks.append(self._graph.hash_task(chunk, items))
        self._submit(tasks, completions)

    def _submit_chains(
        self, chained: list[tuple[int, list[ImageWork], frozenset[int]]], completions: as_completed
    ) -> None:
        tasks = [self._graph.process_tasks(chunk, hashed, keep) for chunk, hashed, keep in chained]
        self._submit(tasks, completions)

    def _submit(self, tasks: list[Any], completions: as_completed) -> None:
        if not tasks:
            return
        # optimize_graph=False: the scheduler-side cull of a large list is quadratic (DESIGN.md).
        futures = self.connection.client.compute(tasks, optimize_graph=False)
        with self._lock:
            self._held.update((future.key, future) for future in futures)
            cancelled_meanwhile = self._cancel_requested
        completions.update(futures)
        if cancelled_meanwhile:
            self.connection.client.cancel(futures)

    def _resolve_duplicates(self, hashed: list[ImageWork]) -> frozenset[int]:
        """Record hash failures and known duplicates; return the indices still to process."""
        keep = set()
        for work in hashed:
            if work.failure is not None:
                self._record(
                    ImageResult(
                        work.index,
                        work.source,
                        "failed",
                        failure=work.failure,
                        timings_ms=work.timings_ms,
                    )
                )
                continue
            duplicate = self._duplicates.claim(work.index, work.source, work.sha256)
            if duplicate is not None:
                self._record(duplicate)
            elif self._duplicates.is_first(work.index, work.sha256):
                keep.add(work.index)
        return frozenset(keep)

    def _chunk_failed(self, chunk: int, step: str, error: BaseException | None) -> None:
        """A task raised instead of returning values. If its worker kept dying (a memory bomb,
        a decoder crash), Dask blames every image in the chunk: retry each alone, so only the
        culprit fails. Anything else is a bug; its images fail and the batch goes on."""
        members = self._chunk_members.pop(chunk, [])
        if isinstance(error, KilledWorker):
            suspects = [index for index in members if index not in self._quarantined]
            if suspects:
                logger.warning(
                    "batch %s: chunk %d killed its worker; %d images will be retried alone",
                    self.batch_id,
                    chunk,
                    len(suspects),
                )
                self._quarantine.extend(suspects)
                self._quarantined.update(suspects)
            members = [index for index in members if index not in suspects]
        failed_step: Step = step if step in STEPS else "encode"  # type: ignore[assignment]
        for index in members:
            source = self.inputs[index].source
            if isinstance(error, KilledWorker):
                failure = Failure(
                    failed_step,
                    "worker_died",
                    f"{source}: processing it killed its worker every time, even alone on the "
                    "cluster (out of memory, or a crash in a decoder)",
                )
            else:
                reason = f"{type(error).__name__}: {error}"
                message = f"{source}: the {step} task for this image failed ({reason})"
                failure = Failure(failed_step, "internal_error", message)
            self._record(ImageResult(index, source, "failed", failure=failure))

    def _record(self, result: ImageResult) -> None:
        if not self._manifest.write(result):
            return
        with self._lock:
            self._counts[result.status] += 1
        if result.status == "failed" and result.failure is not None:
            self._failure_codes[result.failure.code] += 1
        self._timings.add(result.timings_ms)
        if self.progress is not None:
            self.progress.image(result)
        for duplicate in self._duplicates.settle(result):
            self._record(duplicate)

    def _finish(self) -> None:
        try:
            for index in list(self._manifest.missing()):
                self._record(ImageResult(index, self.inputs[index].source, "cancelled"))
            self._manifest.close()
        except Exception as error:
            logger.exception("batch %s: could not finish the manifest", self.batch_id)
            self._error = self._error or error
        if self._cancel_requested and self._error is None:
            self._wait_until_no_task_runs()
        # Object stores show a file only once its upload completes, so only a local output can
        # hold the orphans, and listing every image folder of an S3 output would be costly.
        if self._error is None and self.root.is_local and self._a_worker_left():
            self._remove_orphaned_temporaries()
        with self._lock:
            self._elapsed = time.monotonic() - self._started
            if self._error is not None:
                self._state = "failed"
            elif self._cancel_requested:
                self._state = "cancelled"
            else:
                self._state = "done"
        try:
            self._publish_summary()
        finally:
            self.connection.close()
            _running.discard(self)
            self._finished.set()

    def _wait_until_no_task_runs(self) -> None:
        """``client.cancel`` drops queued tasks, but one that is running runs on until it reaches
        its next image or file. Wait for those too, so that once cancel returns nothing of the
        batch runs anywhere: the cluster can be closed at once without cutting a write short."""
        deadline = time.monotonic() + CANCEL_SETTLE_S
        while True:
            try:
                running = self.connection.client.run(
                    running_tasks, self.batch_id, on_error="return"
                )
            except Exception as error:  # the cluster is going away: nothing is left to wait for
                logger.debug("batch %s: cannot ask the workers (%s)", self.batch_id, error)
                return
            if not any(isinstance(count, int) and count for count in running.values()):
                return
            if time.monotonic() > deadline:
                logger.warning(
                    "batch %s: tasks still running %.0f s after cancel",
                    self.batch_id,
                    CANCEL_SETTLE_S,
                )
                return
            time.sleep(0.05)

    def _a_worker_left(self) -> bool:
        """Whether a worker that was there when the batch started is gone (died or restarted)."""
        try:
            now = set(self.connection.client.nthreads())
        except Exception:  # the cluster is going away: there is no one left to ask
            return False
        return not self._workers_at_start <= now

    def _remove_orphaned_temporaries(self) -> None:
        """A worker killed mid-write leaves its temporary file in the image's folder; Dask reran
        the task elsewhere and the real file is in place. Every task of the batch has ended, so
        whatever temporary is left in its images' folders is such an orphan."""
        try:
            removed = sum(
                self.root.remove_temporaries(image_folder(digest))
                for digest in set(self._manifest.digests())
            )
        except Exception as error:  # tidying up must never keep a batch from ending
            logger.warning("batch %s: could not look for orphaned files: %s", self.batch_id, error)
            return
        if removed:
            logger.info("batch %s: removed %d files left by a lost worker", self.batch_id, removed)

    def _publish_summary(self) -> None:
        """The report beside the manifest, and the final state in the progress store."""
        summary = self._summary().to_json()
        if self._error is not None:
            summary["error"] = str(self._error)
        try:
            self.root.write_atomic(summary_path(self.batch_id), json.dumps(summary).encode())
        except OSError as error:
            logger.warning("batch %s: could not write its summary: %s", self.batch_id, error)
        if self.progress is not None:
            fields = summary_fields(summary)
            if self._error is not None:
                fields["error"] = str(self._error)
            self.progress.state(self._state, **fields)
            self.progress.close(timeout_s=PROGRESS_FLUSH_S)


# How long the end of a batch waits for the progress store to take its final state.
PROGRESS_FLUSH_S = 10.0
# How long a cancelled batch waits for its running tasks to stop (each checks before every image
# and file it writes, so this is at most one image's decode or encode in practice).
CANCEL_SETTLE_S = 30.0

_running: weakref.WeakSet[BatchRun] = weakref.WeakSet()


@atexit.register
def _cancel_running_batches() -> None:
    """At interpreter exit, cancel what still runs so the manifest is completed, temporary
    files are gone and an owned LocalCluster is closed, instead of threads dying mid-write."""
    for run in list(_running):
        run.cancel()
        run.wait(timeout=15)
