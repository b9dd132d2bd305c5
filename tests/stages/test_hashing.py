"""sha256_of reads in chunks; whatever the chunk boundaries, the digest is hashlib's.
read_as_hashed gives back exactly the bytes a digest names, or fails the image."""

from __future__ import annotations

import hashlib
import random
import re
import uuid

import fsspec
import pytest

from pipeline.errors import ImageError
from pipeline.stages.hashing import CHUNK_BYTES, Digest, read_as_hashed, sha256_of


def expected_digest(content: bytes) -> Digest:
    return Digest(sha256=hashlib.sha256(content).hexdigest(), size_bytes=len(content))


@pytest.fixture
def memory_url():
    """A fresh ``memory://`` path, removed from fsspec's process-wide memory store afterwards."""
    url = f"memory://thumbflow-tests/{uuid.uuid4().hex}.bin"
    yield url
    filesystem = fsspec.filesystem("memory")
    if filesystem.exists(url):
        filesystem.rm(url)


@pytest.mark.parametrize(
    ("size_bytes", "chunk_bytes"),
    [
        pytest.param(0, 4, id="empty-file"),
        pytest.param(3, 4, id="smaller-than-one-chunk"),
        pytest.param(4, 4, id="exactly-one-chunk"),
        pytest.param(8, 4, id="exactly-two-chunks"),
        pytest.param(10, 4, id="two-chunks-and-a-partial-one"),
        pytest.param(100_000, 7, id="many-odd-sized-chunks"),
        pytest.param(1, 1, id="one-byte-chunks"),
        pytest.param(5000, CHUNK_BYTES, id="default-chunk-size"),
    ],
)
def test_sha256_of_local_file_matches_hashlib(tmp_path, size_bytes, chunk_bytes):
    content = random.Random(size_bytes).randbytes(size_bytes)
    path = tmp_path / "source.bin"
    path.write_bytes(content)
    assert sha256_of(str(path), chunk_bytes=chunk_bytes) == expected_digest(content)


def test_sha256_of_accepts_a_file_url(tmp_path):
    content = b"thumbflow" * 1000
    path = tmp_path / "source.bin"
    path.write_bytes(content)
    assert sha256_of(f"file://{path}", chunk_bytes=64) == expected_digest(content)


@pytest.mark.parametrize("chunk_bytes", [3, 4096, CHUNK_BYTES])
def test_sha256_of_fsspec_memory_url_matches_hashlib(memory_url, chunk_bytes):
    content = random.Random(chunk_bytes).randbytes(10_000)
    with fsspec.open(memory_url, "wb") as stream:
        stream.write(content)
    assert sha256_of(memory_url, chunk_bytes=chunk_bytes) == expected_digest(content)


def test_sha256_of_missing_local_file_raises_oserror(tmp_path):
    missing = tmp_path / "missing.jpg"
    with pytest.raises(OSError, match=re.escape(str(missing))):
        sha256_of(str(missing))


def test_sha256_of_missing_memory_url_raises_oserror(memory_url):
    with pytest.raises(OSError, match=re.escape(memory_url.removeprefix("memory://"))):
        sha256_of(memory_url)


def test_read_as_hashed_gives_the_bytes_the_digest_names(tmp_path):
    path = tmp_path / "source.bin"
    path.write_bytes(b"thumbflow" * 100)
    assert read_as_hashed(str(path), sha256_of(str(path))) == b"thumbflow" * 100


@pytest.mark.parametrize(
    "later",
    [
        pytest.param(b"thumbflow" * 99 + b"thumbFlow", id="same-size-other-bytes"),
        pytest.param(b"thumbflow" * 101, id="grown"),
        pytest.param(b"thumbflow" * 99, id="shrunk"),
        pytest.param(b"", id="emptied"),
    ],
)
def test_read_as_hashed_refuses_a_file_changed_since_it_was_hashed(tmp_path, later):
    path = tmp_path / "source.bin"
    path.write_bytes(b"thumbflow" * 100)
    digest = sha256_of(str(path))
    path.write_bytes(later)
    with pytest.raises(ImageError) as refused:
        read_as_hashed(str(path), digest)
    assert refused.value.failure.code == "changed_during_batch"
    assert str(path) in refused.value.failure.message
