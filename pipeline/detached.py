"""Detached batches: the driver runs on the cluster, so the submitter can go away. The driver
task runs on a worker; ``RemoteRun`` in any process that follows the batch.

``submit(..., detached=True)`` sends one task to a shared cluster: the driver. On a worker it does
exactly what the driver thread does in a submitting process (``BatchRun``): it secedes from the
worker's thread pool, so it holds no slot while it waits, submits the batch's chunk tasks through
the worker's client, writes the manifest to the shared output root, and records progress in
Redis, which is how the submitter, or anyone, follows and cancels the batch later.
``fire_and_forget`` keeps it running after the submitting client disconnects.

If the worker running the driver dies, Dask runs the driver again elsewhere. That is safe by
construction: finished images are found by their records and reused, and Redis counts each image
once whatever happens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from distributed import get_client, secede

from pipeline.cluster import Connection
from pipeline.config import PipelineConfig
from pipeline.driver.manifest import manifest_path, summary_path
from pipeline.driver.run import BatchRun
from pipeline.errors import ClusterError
from pipeline.inputs import InputFile
from pipeline.progress.publisher import RedisProgress
from pipeline.progress.store import RedisStore, StoredBatch, redact
from pipeline.results import BatchReport, BatchStatus
from pipeline.storage import OutputRoot
from pipeline.storage_options import StorageOptions


@dataclass(frozen=True)
class DetachedJob:
    """Everything the driver needs, as plain values (it travels through the scheduler)."""

    batch_id: str
    inputs: tuple[InputFile, ...]
    config: PipelineConfig
    output: str
    redis_url: str = field(repr=False)  # may hold a password: never in a repr or a log
    ttl_s: float
    # fsspec's options for the output and inputs; may hold credentials (their repr shows none)
    storage_options: StorageOptions = field(default_factory=StorageOptions, repr=False)

    def __repr__(self) -> str:
        return (
            f"DetachedJob({self.batch_id!r}, {len(self.inputs)} inputs, output={self.output!r}, "
            f"redis={redact(self.redis_url)!r})"
        )


# A detached driver whose worker died is started again by Dask on another worker, which takes
# a moment (longer when every worker is busy): only this much silence means it is gone for good.
DETACHED_DRIVER_GONE_AFTER_S = 60.0


def driver_key(batch_id: str) -> str:
    return f"thumbflow-driver-{batch_id}"


def drive_on_cluster(job: DetachedJob) -> dict[str, Any]:
    """The body of the driver task: run the whole batch from inside a worker."""
    client = get_client()
    secede()
    run = BatchRun(
        batch_id=job.batch_id,
        inputs=job.inputs,
        config=job.config,
        root=OutputRoot(job.output, job.storage_options),
        connection=Connection(client),
    )
    run.progress = RedisProgress(
        RedisStore(job.redis_url), job.batch_id, ttl_s=job.ttl_s, on_cancel_request=run.cancel
    )
    run.start()
    run.wait()
    return run.report().to_json()


class RemoteRun:
    """A detached batch seen from any process: status and cancel through Redis, the report from
    the summary file that the driver writes beside the manifest."""

    def __init__(
        self, batch_id: str, store: RedisStore, root: OutputRoot, dashboard_link: str | None
    ) -> None:
        self.batch_id = batch_id
        self.root = root
        self.dashboard_link = dashboard_link
        self._store = store

    def status(self) -> BatchStatus:
        return self._store.batch(self.batch_id).status()

    def cancel(self) -> None:
        self._store.request_cancel(self.batch_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Until the batch ends, or its driver has been silent so long that Dask would have
        started it again on another worker by now (``report`` then says it is gone)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ended(self._store.batch(self.batch_id)):
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.25)
        return True

    @staticmethod
    def _silent_too_long(stored: StoredBatch) -> bool:
        return stored.stale and stored.read_at - stored.last_beat > DETACHED_DRIVER_GONE_AFTER_S

    def _ended(self, stored: StoredBatch) -> bool:
        return stored.status().finished or self._silent_too_long(stored)

    def report(self) -> BatchReport:
        stored = self._store.batch(self.batch_id)
        if not stored.status().finished and self._silent_too_long(stored):
            raise ClusterError(
                f"batch {self.batch_id}: its driver is gone (no heartbeat for over "
                f"{DETACHED_DRIVER_GONE_AFTER_S:.0f} s, and Dask did not start it again); "
                "run the same batch again to finish it, reusing every finished image"
            )
        if stored.state == "failed":
            raise ClusterError(
                f"batch {self.batch_id} failed: {stored.fields.get('error', 'unknown')}"
            )
        summary = self.root.read_json(summary_path(self.batch_id))
        if not isinstance(summary, dict):
            # The output may not be readable from here; the progress store still knows.
            return BatchReport(
                status=stored.status(),
                manifest=self.root.location(manifest_path(self.batch_id)),
                output=self.root.url,
            )
        return BatchReport.from_json(summary)
