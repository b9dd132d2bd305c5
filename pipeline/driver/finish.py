"""The end of a batch: let cancelled tasks settle, tidy after lost workers, publish the summary.
Runs in the driver once its last result is in (or it was cancelled, or it failed).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Set
from typing import Any

from distributed import Client

from pipeline.driver.manifest import summary_path
from pipeline.progress.publisher import RedisProgress, summary_fields
from pipeline.results import BatchState
from pipeline.storage import OutputRoot, image_folder, temporary_owner
from pipeline.worker.cancellation import running_tasks
from pipeline.worker.fetched import remove_batch_spool

logger = logging.getLogger(__name__)

# How long a cancelled batch waits for its running tasks to stop (each checks before every image
# and file it writes, so this is at most one image's decode or encode in practice).
CANCEL_SETTLE_S = 30.0
# How long the end of a batch waits for the progress store to take its final state.
PROGRESS_FLUSH_S = 10.0


def settle_and_tidy(
    client: Client,
    root: OutputRoot,
    batch_id: str,
    *,
    cancelled: bool,
    workers_at_start: Set[str],
    digests: Callable[[], Iterable[str]],
) -> None:
    """Once the last result is in: a cancelled batch waits until none of its tasks runs; a
    batch that lost a worker removes the temporary files that worker left."""
    if cancelled:
        wait_until_no_task_runs(client, batch_id)
    live = live_workers(client)
    if live is not None and not workers_at_start <= live:
        remove_orphaned_temporaries(root, batch_id, digests(), live)


def wait_until_no_task_runs(client: Client, batch_id: str) -> None:
    """``client.cancel`` drops queued tasks, but one that is running runs on until it reaches its
    next image or file. Wait for those too, so that once cancel returns nothing of the batch runs
    anywhere: the cluster can be closed at once without cutting a write short."""
    deadline = time.monotonic() + CANCEL_SETTLE_S
    while True:
        try:
            running = client.run(running_tasks, batch_id, on_error="return")
        except Exception as error:  # the cluster is going away: nothing is left to wait for
            logger.debug("batch %s: cannot ask the workers (%s)", batch_id, error)
            return
        if not any(isinstance(count, int) and count for count in running.values()):
            return
        if time.monotonic() > deadline:
            logger.warning(
                "batch %s: tasks still running %.0f s after cancel", batch_id, CANCEL_SETTLE_S
            )
            return
        time.sleep(0.05)


def live_workers(client: Client) -> set[str] | None:
    """The addresses of the workers there now; None if the cluster cannot say (it is going
    away, and there is no one left to ask)."""
    try:
        return set(client.nthreads())  # a fresh answer; scheduler_info() may be a cached summary
    except Exception:
        return None


def remove_orphaned_temporaries(
    root: OutputRoot, batch_id: str, digests: Iterable[str], live: Set[str]
) -> None:
    """A worker killed mid-write leaves its temporary file in the image's folder; Dask reran the
    task elsewhere and the real file is in place. Every task of the batch has ended, so a
    temporary of this batch whose worker is not among the ``live`` ones can be written by no
    one: that is an orphan. A live worker's, or another batch's writing the same image, is not
    touched. Object stores show a file only once its upload completes, so only a local output
    can hold orphans (and listing every folder of an object store would be costly)."""
    if not root.is_local:
        return
    still_writing = {temporary_owner(batch_id, address) for address in live}

    def orphaned(owner: str) -> bool:
        return owner.rpartition(".")[0] == batch_id and owner not in still_writing

    try:
        removed = sum(
            root.remove_temporaries(image_folder(digest), orphaned) for digest in set(digests)
        )
    except Exception as error:  # tidying up must never keep a batch from ending
        logger.warning("batch %s: could not look for orphaned files: %s", batch_id, error)
        return
    if removed:
        logger.info("batch %s: removed %d files left by a lost worker", batch_id, removed)


def remove_fetched(client: Client, batch_id: str) -> None:
    """URLs' bytes the batch fetched and did not decode (a duplicate's, a cancelled image's):
    off every worker's disk (``pipeline.worker.fetched``)."""
    try:
        client.run(remove_batch_spool, batch_id, on_error="return")
    except Exception as error:  # the cluster is going away: its machines' temp dirs with it
        logger.debug("batch %s: cannot tidy fetched files (%s)", batch_id, error)


def publish_summary(
    root: OutputRoot,
    batch_id: str,
    summary: dict[str, Any],
    state: BatchState,
    progress: RedisProgress | None,
) -> None:
    """The report beside the manifest, and the final state in the progress store."""
    try:
        root.write_atomic(summary_path(batch_id), json.dumps(summary).encode())
    except OSError as error:
        logger.warning("batch %s: could not write its summary: %s", batch_id, error)
    if progress is not None:
        fields = summary_fields(summary)
        if "error" in summary:
            fields["error"] = summary["error"]
        progress.state(state, **fields)
        progress.close(timeout_s=PROGRESS_FLUSH_S)
