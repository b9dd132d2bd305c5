"""The notebook user's entry points: ``submit`` returns a handle at once, ``run`` waits."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from distributed import Client

from pipeline.batch import BatchReport, BatchRun, BatchStatus
from pipeline.cluster import Connection, connect
from pipeline.config import PipelineConfig
from pipeline.errors import ClusterError
from pipeline.inputs import expand_inputs
from pipeline.manifest import manifest_path
from pipeline.storage import OutputRoot

PathOrUrl = str | os.PathLike[str]


def new_batch_id() -> str:
    """Sortable by start time and unique: ``20261125-141023-3f9a1c``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


class BatchHandle:
    """A batch that is running (or has run). Returned at once by ``submit``.

    >>> handle = pipeline.submit(["photos/"], "out/")
    >>> handle.status()        # BatchStatus(total=25, ok=7, duplicate=0, failed=0, ...)
    >>> handle.result()        # waits; BatchReport with counts, timings, manifest path
    """

    def __init__(self, run: BatchRun) -> None:
        self._run = run

    def __repr__(self) -> str:
        status = self.status()
        return (
            f"<BatchHandle {self.batch_id} {status.state}: {status.ok} ok, "
            f"{status.duplicate} duplicate, {status.failed} failed, {status.pending} pending "
            f"of {status.total}>"
        )

    @property
    def batch_id(self) -> str:
        return self._run.batch_id

    @property
    def output(self) -> str:
        return self._run.root.url

    @property
    def manifest(self) -> str:
        """Where the manifest appears when the batch ends."""
        return self._run.root.full_path(manifest_path(self.batch_id))

    @property
    def dashboard_link(self) -> str | None:
        return self._run.connection.dashboard_link

    def status(self) -> BatchStatus:
        return self._run.status()

    def done(self) -> bool:
        return self.status().finished

    def result(self, timeout: float | None = None) -> BatchReport:
        """Wait for the batch to end. Per-image failures are in the report, never raised; an
        infrastructure fault (scheduler lost, output unwritable) raises its ``ThumbflowError``."""
        if not self._run.wait(timeout):
            raise TimeoutError(f"batch {self.batch_id} still running after {timeout} s")
        return self._run.report()

    def cancel(self, timeout: float | None = 30.0) -> BatchStatus:
        """Stop the batch: nothing new starts, queued work is dropped, every image not yet done
        is recorded as ``cancelled``. Returns the final status once the batch has settled."""
        self._run.cancel()
        self._run.wait(timeout)
        return self.status()


def submit(
    inputs: Iterable[PathOrUrl] | PathOrUrl,
    output: PathOrUrl,
    *,
    config: PipelineConfig | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> BatchHandle:
    """Start a batch and return its handle at once.

    ``inputs`` are files, folders, globs or fsspec URLs. The batch runs on ``client`` if given,
    else on the scheduler at ``scheduler``, else on a new LocalCluster of ``workers`` processes
    (one per core by default) that closes when the batch ends. Bad inputs and an unwritable
    output raise here, before any work is submitted.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    files = expand_inputs(inputs)
    root = OutputRoot(os.fspath(output))
    root.check_writable()
    connection = connect(client=client, scheduler=scheduler, workers=workers)
    try:
        _require_workers(connection)
        run = BatchRun(
            batch_id=new_batch_id(),
            inputs=files,
            config=config or PipelineConfig(),
            root=root,
            connection=connection,
        )
    except BaseException:
        connection.close()
        raise
    run.start()
    return BatchHandle(run)


def run(
    inputs: Iterable[PathOrUrl] | PathOrUrl,
    output: PathOrUrl,
    *,
    config: PipelineConfig | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
) -> BatchReport:
    """``submit(...)`` and wait for the report."""
    handle = submit(
        inputs, output, config=config, client=client, scheduler=scheduler, workers=workers
    )
    return handle.result()


def _require_workers(connection: Connection, timeout: float = 30.0) -> None:
    """A scheduler with no workers would accept the batch and never run it."""
    try:
        connection.client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as error:
        raise ClusterError(
            f"the scheduler has no workers (waited {timeout:.0f} s); start some with "
            "`dask worker <scheduler address>`"
        ) from error
