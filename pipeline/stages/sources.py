"""Opening an input for reading, whether it is a local path or an fsspec URL.

Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

A URL is opened with the batch's ``storage_options`` (credentials, an endpoint): the task that
reads sets them for its own context with ``reading_with``, so every stage below it (hash,
header, decode) opens inputs the same way without passing them along.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, BinaryIO, cast

import fsspec

_storage_options: ContextVar[Mapping[str, Any] | None] = ContextVar("storage_options", default=None)


@contextmanager
def reading_with(storage_options: Mapping[str, Any]) -> Iterator[None]:
    """Open URLs with ``storage_options`` inside this block (this thread or task only)."""
    token = _storage_options.set(storage_options)
    try:
        yield
    finally:
        _storage_options.reset(token)


def is_url(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def open_binary(source: str) -> BinaryIO:
    """A readable binary file object; local paths skip fsspec's indirection (it costs ~50 µs)."""
    if not is_url(source):
        return open(source.removeprefix("file://"), "rb")
    return cast(BinaryIO, fsspec.open(source, "rb", **(_storage_options.get() or {})).open())
