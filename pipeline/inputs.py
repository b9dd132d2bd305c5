"""Turn what the user named (files, folders, globs, fsspec URLs) into a list of input files."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import fsspec

from pipeline.errors import InputError
from pipeline.stages.sources import is_url


@dataclass(frozen=True)
class InputFile:
    source: str
    size_bytes: int


def _walk_local(folder: str) -> Iterator[InputFile]:
    """Files below ``folder`` in a stable order; hidden files and folders (.DS_Store, .git) are
    not inputs."""
    for current, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(current, name)
            try:
                yield InputFile(path, os.stat(path).st_size)
            except OSError:
                yield InputFile(path, 0)  # unreadable: the hash step will say why


def _expand_url(url: str) -> Iterator[InputFile]:
    try:
        filesystem, path = fsspec.core.url_to_fs(url)
        protocol = url.split("://", 1)[0]
        if filesystem.isdir(path):
            found = filesystem.find(path, detail=True)
            for name in sorted(found):
                if not os.path.basename(name).startswith("."):
                    yield InputFile(f"{protocol}://{name}", int(found[name].get("size") or 0))
        elif filesystem.exists(path):
            yield InputFile(url, int(filesystem.size(path) or 0))
        else:
            raise InputError(f"input {url!r} does not exist")
    except (OSError, ValueError, ImportError) as error:
        raise InputError(f"cannot list input {url!r}: {error}") from error


def _expand_one(item: str) -> Iterator[InputFile]:
    if is_url(item):
        yield from _expand_url(item)
    elif os.path.isdir(item):
        yield from _walk_local(os.path.abspath(item))
    elif os.path.isfile(item):
        yield InputFile(os.path.abspath(item), os.stat(item).st_size)
    elif glob.has_magic(item):
        matches = sorted(glob.glob(item, recursive=True))
        if not matches:
            raise InputError(f"no files match {item!r}")
        for match in matches:
            yield from _expand_one(match)
    else:
        raise InputError(f"input {item!r} does not exist")


def expand_inputs(items: Iterable[str | os.PathLike[str]]) -> list[InputFile]:
    """Every file the inputs name, in the order given (folders sorted), each listed once even
    when two inputs overlap. Local paths come back absolute: they travel to workers that may
    run in another folder. Raises ``InputError`` if an input is missing or nothing is found."""
    seen: set[str] = set()
    files: list[InputFile] = []
    for item in items:
        for found in _expand_one(os.fspath(item)):
            if found.source not in seen:
                seen.add(found.source)
                files.append(found)
    if not files:
        raise InputError("the inputs hold no files")
    return files
