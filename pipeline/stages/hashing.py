"""Content digest of a source, read in chunks so a 50 MB input never sits in memory whole."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

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
