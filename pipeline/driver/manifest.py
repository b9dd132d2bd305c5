"""The manifest: one JSON line per input, streamed as results arrive, renamed into place at the
end. Written by the driver; ``read_manifest`` works from anywhere.

Rows are written as they come back (not kept on the client: a 100k batch would hold them all),
to ``manifests/<batch>.jsonl.partial`` (on an object store, to an upload that becomes the
object when it completes); closing the batch writes a row for every input that never
reported (cancelled) and renames the file, so a finished manifest always has every input once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

from pipeline.results import ImageResult
from pipeline.storage import OutputRoot


def manifest_path(batch_id: str) -> str:
    return f"manifests/{batch_id}.jsonl"


def summary_path(batch_id: str) -> str:
    """The batch's report (counts, failures by code, per-step timings) beside its manifest."""
    return f"manifests/{batch_id}.summary.json"


class ManifestWriter:
    """Appends rows for one batch; ``close`` makes the manifest appear, complete, at its path."""

    def __init__(self, root: OutputRoot, batch_id: str, total: int) -> None:
        self._root = root
        self._path = manifest_path(batch_id)
        # locally ``<path>.partial`` until closed; on an object store, invisible until closed
        self._stream: TextIO
        self._stream, self._written_as = root.open_for_publishing(self._path)
        self._written = bytearray(total)  # one flag per input: cheap even for 10^6 inputs

    @property
    def path(self) -> str:
        return self._root.location(self._path)

    def write(self, result: ImageResult) -> bool:
        """Append ``result``'s row; False if that input already has one (a re-run task)."""
        if self._written[result.index]:
            return False
        self._written[result.index] = 1
        self._stream.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
        return True

    def missing(self) -> Iterator[int]:
        """Indices of inputs that have no row yet."""
        return (index for index, done in enumerate(self._written) if not done)

    def close(self) -> None:
        self._stream.close()
        self._root.publish(self._written_as, self._path)

    def digests(self) -> Iterator[str]:
        """The SHA-256 of every input the closed manifest records as processed (ok or failed)."""
        for row in read_manifest(self.path, self._root.storage_options):
            if row.get("sha256") and row["status"] in ("ok", "failed"):
                yield row["sha256"]


def read_manifest(
    path: str, storage_options: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The rows of a finished manifest, in the order they were written (``storage_options``:
    fsspec's, for a manifest on an object store that needs them)."""
    import fsspec

    with fsspec.open(path, "r", encoding="utf-8", **(storage_options or {})) as stream:
        return [json.loads(line) for line in stream if line.strip()]
