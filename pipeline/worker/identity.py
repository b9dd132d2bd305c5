"""Which batch, on which worker, the running task writes for. Runs on the workers.

The answer goes into the names of temporary files (``storage.temporary_owner``), so the driver
of a batch that lost a worker can remove exactly what that worker left half-written, and
nothing that a live worker or another batch is still writing.
"""

from __future__ import annotations

from distributed import get_worker

from pipeline.keys import parse_key
from pipeline.storage import temporary_owner


def current_writer() -> str:
    """The owner of files the running task writes; empty outside a Dask task (tests, a plain
    process pool), where no driver sweeps anything."""
    try:
        worker = get_worker()
    except ValueError:
        return ""
    key = parse_key(worker.get_current_task())
    return temporary_owner(key.batch_id, worker.address) if key is not None else ""
