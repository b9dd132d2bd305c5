"""Turn what the user named (files, folders, globs, fsspec URLs) into a list of input files.
Runs in the submitting process.

The output root is never an input, wherever it sits: a batch writing into a folder below its
inputs would otherwise read its own derivatives, records and manifests on the next run.
"""

from __future__ import annotations

import glob
import os
import posixpath
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import fsspec

from pipeline.errors import InputError
from pipeline.stages.sources import is_url


@dataclass(frozen=True)
class InputFile:
    source: str
    size_bytes: int


class _OutputRoot:
    """Where the batch writes, to leave out of the inputs: a local folder compared after
    resolving symbolic links and ``..``, or a URL compared by protocol and normalised path."""

    def __init__(self, url: str | None) -> None:
        self._local: str | None = None
        self._remote: tuple[str, str] | None = None
        if url is None:
            return
        if is_url(url):
            filesystem, path = fsspec.core.url_to_fs(url)
            self._remote = (_protocol_of(filesystem), _normalised(path))
        else:
            self._local = os.path.realpath(url.removeprefix("file://"))

    def holds_local(self, path: str) -> bool:
        return self._local is not None and _is_within(os.path.realpath(path), self._local)

    def holds_remote(self, filesystem: fsspec.AbstractFileSystem, path: str) -> bool:
        if self._remote is None or _protocol_of(filesystem) != self._remote[0]:
            return False
        return _is_within(_normalised(path), self._remote[1])


def _protocol_of(filesystem: fsspec.AbstractFileSystem) -> str:
    protocol = filesystem.protocol
    return str(protocol if isinstance(protocol, str) else protocol[0])


def _normalised(path: str) -> str:
    return posixpath.normpath("/" + path.lstrip("/"))


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _walk_local(folder: str, output: _OutputRoot) -> Iterator[InputFile]:
    """Files below ``folder`` in a stable order; hidden files and folders (.DS_Store, .git) are
    not inputs, nor is the output root. Checked per folder, not per file (resolving a path
    costs a system call per component): the walk does not follow links to folders."""
    if output.holds_local(folder):
        return
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(
            name
            for name in folders
            if not name.startswith(".") and not output.holds_local(os.path.join(current, name))
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(current, name)
            try:
                yield InputFile(path, os.stat(path).st_size)
            except OSError:
                yield InputFile(path, 0)  # unreadable: the hash step will say why


def _expand_url(url: str, output: _OutputRoot) -> Iterator[InputFile]:
    try:
        filesystem, path = fsspec.core.url_to_fs(url)
        protocol = url.split("://", 1)[0]
        if filesystem.isdir(path):
            found = filesystem.find(path, detail=True)
            for name in sorted(found):
                if os.path.basename(name).startswith(".") or output.holds_remote(filesystem, name):
                    continue
                yield InputFile(f"{protocol}://{name}", int(found[name].get("size") or 0))
        elif filesystem.exists(path):
            if not output.holds_remote(filesystem, path):
                yield InputFile(url, int(filesystem.size(path) or 0))
        else:
            raise InputError(f"input {url!r} does not exist")
    except (OSError, ValueError, ImportError) as error:
        raise InputError(f"cannot list input {url!r}: {error}") from error


def _expand_one(item: str, output: _OutputRoot) -> Iterator[InputFile]:
    if is_url(item):
        yield from _expand_url(item, output)
    elif os.path.isdir(item):
        yield from _walk_local(os.path.abspath(item), output)
    elif os.path.isfile(item):
        if not output.holds_local(item):
            yield InputFile(os.path.abspath(item), os.stat(item).st_size)
    elif glob.has_magic(item):
        matches = sorted(glob.glob(item, recursive=True))
        if not matches:
            raise InputError(f"no files match {item!r}")
        for match in matches:
            yield from _expand_one(match, output)
    else:
        raise InputError(f"input {item!r} does not exist")


def expand_inputs(
    items: Iterable[str | os.PathLike[str]], output_root: str | os.PathLike[str] | None = None
) -> list[InputFile]:
    """Every file the inputs name, in the order given (folders sorted), each listed once even
    when two inputs overlap, none of them inside ``output_root``. Local paths come back
    absolute: they travel to workers that may run in another folder. Raises ``InputError`` if
    an input is missing or nothing is found."""
    output = _OutputRoot(None if output_root is None else os.fspath(output_root))
    seen: set[str] = set()
    files: list[InputFile] = []
    for item in items:
        for found in _expand_one(os.fspath(item), output):
            if found.source not in seen:
                seen.add(found.source)
                files.append(found)
    if not files:
        raise InputError("the inputs hold no files (the output folder is never an input)")
    return files
