"""The entry points: ``submit`` returns a handle at once, ``run`` waits; ``status``, ``cancel``
and ``list_batches`` reach any batch by id. Runs in the user's process."""

from __future__ import annotations

import os
import time
import uuid
import warnings
import weakref
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from distributed import Client, Security, fire_and_forget

from pipeline.cluster import Connection, connect
from pipeline.config import PipelineConfig
from pipeline.detached import DetachedJob, RemoteRun, drive_on_cluster, driver_key
from pipeline.driver.manifest import manifest_path
from pipeline.driver.run import BatchRun
from pipeline.errors import (
    ClusterError,
    ConfigError,
    ProgressStoreUnavailable,
    ProgressStoreWarning,
)
from pipeline.inputs import InputFile, expand_inputs, local_roots, url_roots
from pipeline.locations import local_path
from pipeline.preflight import check_paths_visible, check_storage_reachable, check_versions
from pipeline.progress.publisher import DEFAULT_TTL_S, RedisProgress
from pipeline.progress.store import RedisStore
from pipeline.results import BatchReport, BatchStatus
from pipeline.storage import OutputRoot
from pipeline.url_lists import UrlListColumns, is_url_list

PathOrUrl = str | os.PathLike[str]
REDIS_URL_VARIABLE = "THUMBFLOW_REDIS_URL"


def new_batch_id() -> str:
    """Sortable by start time and unique: ``20261125-141023-3f9a1c``."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{uuid.uuid4().hex[:6]}"


class Run(Protocol):
    """What a handle drives: a ``BatchRun`` here, or a ``RemoteRun`` for a detached batch."""

    batch_id: str
    root: OutputRoot

    @property
    def dashboard_link(self) -> str | None: ...
    def status(self) -> BatchStatus: ...
    def cancel(self) -> None: ...
    def wait(self, timeout: float | None = None) -> bool: ...
    def report(self) -> BatchReport: ...


class BatchHandle:
    """A batch that is running (or has run). Returned at once by ``submit``.

    >>> handle = pipeline.submit(["photos/"], "out/")
    >>> handle.status()        # BatchStatus(total=25, ok=7, duplicate=0, failed=0, ...)
    >>> handle.result()        # waits; BatchReport with counts, timings, manifest path
    """

    def __init__(self, run: Run) -> None:
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
        return self._run.root.location(manifest_path(self.batch_id))

    @property
    def dashboard_link(self) -> str | None:
        return self._run.dashboard_link

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
    security: Security | None = None,
    redis_url: str | None = None,
    require_redis: bool = False,
    redis_ttl_s: float = DEFAULT_TTL_S,
    performance_report: str | None = None,
    url_column: str = "url",
    keep_columns: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
    detached: bool = False,
) -> BatchHandle:
    """Start a batch and return its handle at once.

    ``inputs`` are files, folders, globs or fsspec URLs. The batch runs on ``client`` if given,
    else on the scheduler at ``scheduler``, else on a new LocalCluster of ``workers`` processes
    (one per core by default) that closes when the batch ends. Bad inputs and an unwritable
    output raise here, before any work is submitted; so does a cluster we did not start whose
    scheduler or workers cannot import this version of thumbflow or cannot see local paths.

    With ``redis_url`` (or ``THUMBFLOW_REDIS_URL``), progress is recorded in Redis for
    ``status``, ``watch``, ``list`` and ``cancel`` from any process; its keys expire
    ``redis_ttl_s`` after the batch ends. An unreachable Redis only warns (the batch runs and
    the store catches up if it comes back) unless ``require_redis`` is set.

    ``detached=True`` runs the batch's driver on the cluster itself (a shared one: ``scheduler=``
    or ``client=``, with Redis): this process may then exit, and anyone can follow or cancel the
    batch by id with ``status``/``cancel`` or ``thumbflow status/cancel``.

    ``performance_report="report.html"`` saves Dask's performance report of the batch (task
    stream, worker profiles, bandwidth) to that file when it ends.

    An input named directly that ends in ``.txt``, ``.csv``, ``.tsv`` or ``.parquet`` is a list
    of ``http(s)://`` URLs, one input per row (``pipeline.url_lists``): ``url_column`` names
    the URL's column in a CSV/TSV/Parquet list, ``keep_columns`` the columns each row carries
    to its manifest row. ``config.fetch`` sets the workers' timeouts and retries.

    ``storage_options`` are fsspec's for the URL inputs and output (say, ``{"key": …,
    "secret": …, "client_kwargs": {"endpoint_url": …}}`` for s3fs); they travel to the workers
    with the tasks and are never shown. Without them fsspec uses the usual places (environment
    variables, profiles, its ``FSSPEC_<PROTOCOL>_<OPTION>`` configuration) on each machine.
    """
    if isinstance(inputs, str | os.PathLike):
        inputs = [inputs]
    named = [os.fspath(item) for item in inputs]
    root = OutputRoot(os.fspath(output), storage_options)
    columns = UrlListColumns(url_column, tuple(keep_columns))
    files = expand_inputs(
        named, output_root=root.url, url_columns=columns, storage_options=root.storage_options
    )
    root.check_writable()
    batch_id = new_batch_id()
    store = _progress_store(redis_url, required=require_redis or detached)
    connection = connect(client=client, scheduler=scheduler, workers=workers, security=security)
    try:
        _require_workers(connection)
        if connection.cluster is None:  # a cluster we did not start: check before touching it
            check_versions(connection.client)
            # file:// names as paths, globs by their folder: what must exist on every worker
            # (a URL list is read here, on the client: the workers fetch its URLs, not it)
            read_by_workers = [name for name in named if not _is_local_url_list(name)]
            check_paths_visible(connection.client, local_roots(read_by_workers), writable=root.url)
            # URLs: every worker must reach the store (its credentials and endpoint are its own)
            check_storage_reachable(connection.client, url_roots(read_by_workers), root)
        if detached:
            assert store is not None
            return _submit_detached(batch_id, files, config, root, connection, store, redis_ttl_s)
        run = BatchRun(
            batch_id=batch_id,
            inputs=files,
            config=config or PipelineConfig(),
            root=root,
            connection=connection,
            performance_report=performance_report,
        )
        if store is not None:
            run.progress = RedisProgress(
                store, batch_id, ttl_s=redis_ttl_s, on_cancel_request=run.cancel
            )
    except BaseException:
        connection.close()
        raise
    run.start()
    _this_process[batch_id] = run
    return BatchHandle(run)


def run(
    inputs: Iterable[PathOrUrl] | PathOrUrl,
    output: PathOrUrl,
    *,
    config: PipelineConfig | None = None,
    client: Client | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    security: Security | None = None,
    redis_url: str | None = None,
    require_redis: bool = False,
    redis_ttl_s: float = DEFAULT_TTL_S,
    performance_report: str | None = None,
    url_column: str = "url",
    keep_columns: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
) -> BatchReport:
    """``submit(...)`` with the same options, and wait for the report."""
    options: dict[str, Any] = {
        name: value for name, value in locals().items() if name not in ("inputs", "output")
    }
    return submit(inputs, output, **options).result()


# Batches submitted by this process, so status and cancel by id work here without Redis.
_this_process: weakref.WeakValueDictionary[str, BatchRun] = weakref.WeakValueDictionary()


def _redis_url(redis_url: str | None) -> str | None:
    return redis_url or os.environ.get(REDIS_URL_VARIABLE) or None


def _progress_store(redis_url: str | None, *, required: bool) -> RedisStore | None:
    url = _redis_url(redis_url)
    if url is None:
        if required:
            raise ConfigError(f"require_redis needs redis_url= or ${REDIS_URL_VARIABLE}")
        return None
    store = RedisStore(url)
    try:
        store.ping()
    except ProgressStoreUnavailable as error:
        if required:
            raise
        warnings.warn(
            f"{error}; the batch runs anyway and its progress is written if Redis comes back",
            ProgressStoreWarning,
            stacklevel=3,
        )
    return store


def _store_for(redis_url: str | None) -> RedisStore:
    url = _redis_url(redis_url)
    if url is None:
        raise ConfigError(
            "that batch was not submitted by this process: give redis_url= or set "
            f"${REDIS_URL_VARIABLE} to read it from the progress store"
        )
    return RedisStore(url)


def status(batch_id: str, *, redis_url: str | None = None) -> BatchStatus:
    """The status of any batch: from this process if it submitted it, else from Redis.
    Raises ``BatchNotFound`` or ``ProgressStoreUnavailable`` (both ``ThumbflowError``)."""
    if (local := _this_process.get(batch_id)) is not None:
        return local.status()
    return _store_for(redis_url).batch(batch_id).status()


def cancel(batch_id: str, *, redis_url: str | None = None) -> BatchStatus:
    """Cancel any batch by id. Here, the batch's own handle cancels it; in another process the
    request goes through Redis and the submitting process cancels within about a second.
    Returns the status as it stood when the request was made."""
    if (local := _this_process.get(batch_id)) is not None:
        local.cancel()
        local.wait(timeout=30)
        return local.status()
    return _store_for(redis_url).request_cancel(batch_id).status()


def list_batches(*, redis_url: str | None = None, limit: int = 20) -> list[BatchStatus]:
    """Recent batches recorded in Redis, newest first."""
    return [stored.status() for stored in _store_for(redis_url).recent(limit)]


def _submit_detached(
    batch_id: str,
    files: list[InputFile],
    config: PipelineConfig | None,
    root: OutputRoot,
    connection: Connection,
    store: RedisStore,
    ttl_s: float,
) -> BatchHandle:
    if connection.cluster is not None:
        raise ConfigError(
            "detached=True needs a cluster that outlives this process: give scheduler= or client="
        )
    job = DetachedJob(
        batch_id=batch_id,
        inputs=tuple(files),
        config=config or PipelineConfig(),
        output=root.url,
        redis_url=store.url,
        ttl_s=ttl_s,
        storage_options=root.storage_options,
    )
    # The record exists from now on, so status() works before the driver has started.
    store.create(batch_id, {"state": "queued", "created_at": time.time(), "total": len(files)})
    driver = connection.client.submit(drive_on_cluster, job, key=driver_key(batch_id), pure=False)
    fire_and_forget(driver)
    remote = RemoteRun(batch_id, store, root, connection.dashboard_link)
    # Let go of our client only once the driver runs on the cluster (or clearly waits there).
    deadline = time.monotonic() + 10
    while remote.status().state == "queued" and time.monotonic() < deadline:
        time.sleep(0.05)
    connection.close()
    return BatchHandle(remote)


def _is_local_url_list(name: str) -> bool:
    path = local_path(name)
    return path is not None and is_url_list(path) and os.path.isfile(path)


def _require_workers(connection: Connection, timeout: float = 30.0) -> None:
    """A scheduler with no workers would accept the batch and never run it."""
    try:
        connection.client.wait_for_workers(1, timeout=timeout)
    except TimeoutError as error:
        raise ClusterError(
            f"the scheduler has no workers (waited {timeout:.0f} s); start some with "
            "`dask worker <scheduler address>`"
        ) from error
