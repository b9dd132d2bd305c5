"""Content digest of a source, read in chunks so a 50 MB input never sits in memory whole; and
the source's bytes read back whole for decoding, checked against that digest.

Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pipeline.errors import Failure, ImageError
from pipeline.stages.sources import open_binary

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Digest:
    sha256: str
    size_bytes: int


def sha256_of(source: str, chunk_bytes: int = CHUNK_BYTES) -> Digest:
    digest = hashlib.sha256()
    size = 0
    with open_binary(source) as stream:
        while block := stream.read(chunk_bytes):
            digest.update(block)
            size += len(block)
    return Digest(sha256=digest.hexdigest(), size_bytes=size)


def read_as_hashed(source: str, digest: Digest, *, stored_at: str | None = None) -> bytes:
    """The bytes of ``source``, provided they are still the ones ``digest`` was taken of.

    The path is read again long after it was hashed (other images of its chunk come first), and
    a file replaced in between would put one picture's derivatives under another's digest. So
    the bytes decoded are read once, into memory, and hashed again: they are the bytes the
    digest names, or the image fails. At most one byte more than was hashed is read, so a file
    grown meanwhile cannot hold more memory than the size limits already allowed.

    ``stored_at`` is where the bytes are read from when that is not ``source`` itself (a URL's
    bytes fetched to the worker's disk, ``pipeline.worker.fetched``); messages name ``source``.
    """
    with open_binary(stored_at or source) as stream:
        data = stream.read(digest.size_bytes + 1)
    if len(data) != digest.size_bytes or hashlib.sha256(data).hexdigest() != digest.sha256:
        message = (
            f"{source}: the file changed while the batch ran (its bytes are no longer those "
            f"hashed at the start); run again to process its new content"
        )
        raise ImageError(Failure("resize", "changed_during_batch", message))
    return data
