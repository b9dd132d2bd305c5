"""Where a URL's bytes live between the hash step and the decode step. Runs on the workers.

The hash step fetches a URL once, hashing the body as it streams into a spool file on the
worker's machine: ``<temp dir>/thumbflow-fetched/<batch id>/<sha256>``. Validate and resize
then read that file, not the URL, because fetching twice doubles the traffic and a server may
answer differently the second time. Why a file, and not:

- worker memory: the graph deliberately lets each chunk's chain start on whichever worker
  frees up first (``pipeline.graph``), often not the one that hashed it; a file in the machine's
  temp dir is seen by every worker process of that machine (all of a LocalCluster's);
- the hash task's result: the driver reads every hash result for dedup, so the bytes would
  travel to the client and the scheduler, which is what ``graph`` is careful never to do.

A chain that lands on another machine finds no spool file and fetches the URL again, into its
own spool, under the same bounds; the digest must match the first fetch, or the image fails as
``changed_during_batch`` (the bytes decoded are always the ones the digest names). The file is
removed once resize has read it (or validate refused the image); what a cancel or a duplicate
leaves is removed by the driver at the end of the batch (``remove_batch_spool`` on every
worker). A spool file is at most ``max_file_bytes``: the fetch stops there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from typing import IO

from distributed import get_worker

from pipeline.config import PipelineConfig
from pipeline.errors import Failure, ImageError
from pipeline.keys import parse_key
from pipeline.stages.hashing import Digest
from pipeline.stages.http_fetch import fetch

SPOOL_FOLDER = "thumbflow-fetched"
_OUTSIDE_DASK = "no-batch"  # a stage called directly (tests): no driver sweeps after it


def current_batch_id() -> str:
    """The batch of the running task; ask in the task's own thread (Dask knows a task by the
    thread running it, and the fetches of a chunk run in threads of their own)."""
    try:
        key = parse_key(get_worker().get_current_task())
    except ValueError:
        return _OUTSIDE_DASK
    return key.batch_id if key is not None else _OUTSIDE_DASK


def spool_folder(batch_id: str) -> str:
    return os.path.join(tempfile.gettempdir(), SPOOL_FOLDER, batch_id)


class _SpoolFile:
    """One fetch's bytes: written to a temporary name, hashed as they arrive."""

    def __init__(self, folder: str) -> None:
        os.makedirs(folder, exist_ok=True)
        handle, self.path = tempfile.mkstemp(dir=folder, prefix=".part-")
        self._file: IO[bytes] = os.fdopen(handle, "wb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, block: bytes) -> None:
        self._file.write(block)
        self._digest.update(block)
        self.size += len(block)

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._digest = hashlib.sha256()
        self.size = 0

    def keep(self, folder: str) -> Digest:
        """Close the file and give it its digest's name (atomically: two URLs serving the
        same bytes may land here at once, with the same content)."""
        self._file.close()
        digest = Digest(self._digest.hexdigest(), self.size)
        os.replace(self.path, os.path.join(folder, digest.sha256))
        return digest

    def discard(self) -> None:
        self._file.close()
        _remove(self.path)


def _fetch_into_spool(url: str, config: PipelineConfig, folder: str) -> Digest:
    spool = _SpoolFile(folder)
    try:
        fetch(url, config.fetch, config.max_file_bytes, spool)
    except BaseException:
        spool.discard()
        raise
    return spool.keep(folder)


def fetch_and_hash(url: str, config: PipelineConfig, batch_id: str) -> Digest:
    """The hash step of a URL: fetch it once into this machine's spool, return its digest."""
    return _fetch_into_spool(url, config, spool_folder(batch_id))


def spooled_copy(url: str, digest: Digest, config: PipelineConfig) -> str:
    """The path of the bytes the hash step fetched for ``digest``; fetched again (and held to
    the same digest) when this worker's machine has no copy."""
    folder = spool_folder(current_batch_id())
    path = os.path.join(folder, digest.sha256)
    if os.path.exists(path):
        return path
    again = _fetch_into_spool(url, config, folder)
    if again != digest:
        release(again.sha256)
        message = (
            f"{url}: the server sent other bytes when fetched again on another machine "
            "(not those hashed at the start); run again to process its new content"
        )
        raise ImageError(Failure("validate", "changed_during_batch", message))
    return path


def release(sha256: str) -> None:
    """The bytes are read (or no longer needed): free the disk."""
    _remove(os.path.join(spool_folder(current_batch_id()), sha256))


def remove_batch_spool(batch_id: str) -> None:
    """Run on every worker when a batch ends: whatever its fetches left on this machine."""
    shutil.rmtree(spool_folder(batch_id), ignore_errors=True)


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
