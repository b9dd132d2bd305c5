"""Turn what the user named (files, folders, globs, fsspec URLs) into a list of input files.
Runs in the submitting process.

One rule for local paths and URLs alike:

- ``file://`` names are local paths (``pipeline.locations``): the same files, listed under the
  same plain paths, as when the path is given without it.
- Hidden files and folders (a name starting with ``.``: ``.DS_Store``, ``.git``) are inputs only
  when named: a folder walk skips them, and so does a wildcard unless its own pattern starts with
  a dot (``photos/.*``), as in the shell.
- Folders are walked through symbolic links, each real folder once; a link that leads back to a
  folder it is in, or to one the walk came through (a loop), is skipped with one
  ``InputWarning`` and the batch goes on.
- The output root is never an input, wherever it sits: a batch writing into a folder below its
  inputs would otherwise read its own derivatives, records and manifests on the next run.
- A local file named directly whose name ends in ``.txt``, ``.csv``, ``.tsv`` or ``.parquet`` is
  a list of URLs (``pipeline.url_lists``): each of its rows is one input, even two rows with
  the same URL.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import posixpath
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import fsspec

from pipeline.errors import Failure, InputError, InputWarning
from pipeline.locations import filesystem_for, local_path
from pipeline.redaction import redact_location, redact_text
from pipeline.stages.http_fetch import is_http
from pipeline.url_lists import UrlListColumns, is_url_list, read_url_list


@dataclass(frozen=True)
class InputFile:
    """One input. From a URL list (``pipeline.url_lists``): ``size_bytes`` is 0 (unknown until
    fetched), ``columns`` what its row carries to the manifest, and ``refusal`` why the row
    cannot be fetched at all (it is then recorded as failed without being sent to a worker)."""

    source: str
    size_bytes: int
    columns: Mapping[str, Any] | None = None
    refusal: Failure | None = None
    listed: bool = False  # a row of a URL list: one input per row, even for a repeated URL


class _OutputRoot:
    """Where the batch writes, to leave out of the inputs: a local folder compared after
    resolving symbolic links and ``..``, or a URL compared by protocol and normalised path."""

    def __init__(self, url: str | None, storage_options: Mapping[str, Any]) -> None:
        self._local: str | None = None
        self._remote: tuple[str, str] | None = None
        if url is None:
            return
        path = local_path(url)
        if path is None:
            filesystem, remote = filesystem_for(url, storage_options)
            self._remote = (_protocol_of(filesystem), _normalised(remote))
        else:
            self._local = os.path.realpath(path)

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


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _wildcard_takes(name: str, pattern: str) -> bool:
    """Whether one path component matches one pattern component: a wildcard does not match a
    hidden name unless the pattern itself starts with a dot."""
    return fnmatch.fnmatch(name, pattern) and (not _is_hidden(name) or _is_hidden(pattern))


@dataclass
class _Expansion:
    """One call of ``expand_inputs``: where outputs go, and which loops were already reported
    (a loop reached from two inputs, or by a walk and a glob, is one warning)."""

    output: _OutputRoot
    storage_options: Mapping[str, Any]
    url_columns: UrlListColumns = field(default_factory=UrlListColumns)
    reported_loops: set[tuple[int, int]] = field(default_factory=set)

    def folders(self, top: str) -> Iterator[tuple[str, list[os.DirEntry[str]]]]:
        """``top`` and every folder below it, parents first and in name order, each with its
        files; through links to folders, each real folder once. Hidden folders, the output
        root and links back to a folder on the way down are left out."""
        identity = _identity(top)
        if identity is None or self.output.holds_local(top):
            return
        seen = {identity}
        # (folder, the identities of it and its parents): a link to one of those is a loop
        pending: list[tuple[str, frozenset[tuple[int, int]]]] = [(top, frozenset({identity}))]
        while pending:
            folder, above = pending.pop()
            try:
                with os.scandir(folder) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError:
                continue  # unreadable or gone: nothing to list (a named file would say why)
            files: list[os.DirEntry[str]] = []
            below: list[tuple[str, frozenset[tuple[int, int]]]] = []
            for entry in entries:
                if _is_hidden(entry.name):
                    continue
                if not _is_folder(entry):
                    files.append(entry)
                    continue
                inner = _identity(entry.path)
                if inner is None or self.output.holds_local(entry.path):
                    continue
                if inner in above or _leads_back(entry, folder):
                    self._report_loop(entry.path, inner)
                elif inner not in seen:  # else a second link to a folder already listed
                    seen.add(inner)
                    below.append((entry.path, above | {inner}))
            yield folder, files
            pending.extend(reversed(below))

    def _report_loop(self, link: str, identity: tuple[int, int]) -> None:
        if identity in self.reported_loops:
            return
        self.reported_loops.add(identity)
        warnings.warn(
            InputWarning(
                f"skipped {link}: a symbolic link loop (it leads back to "
                f"{os.path.realpath(link)}, a folder it is in)"
            ),
            stacklevel=2,
        )

    def walk(self, top: str) -> Iterator[InputFile]:
        for _folder, files in self.folders(top):
            for entry in files:
                try:
                    yield InputFile(entry.path, entry.stat().st_size)
                except OSError:
                    yield InputFile(entry.path, 0)  # unreadable: the hash step will say why

    def glob_local(self, pattern: str) -> Iterator[str]:
        """What a local pattern matches, in order, like the shell's ``**``-aware glob; ``**``
        stands for any folders below (through links, loops left out)."""
        base = os.sep if pattern.startswith(os.sep) else ""
        parts = [part for part in pattern.split(os.sep) if part]
        yield from self._matches(base, parts)

    def _matches(self, base: str, parts: list[str]) -> Iterator[str]:
        if not parts:
            yield base
            return
        head, rest = parts[0], parts[1:]
        here = base or os.curdir
        if head == "**":
            for folder, _files in self.folders(here):
                yield from self._matches("" if folder == os.curdir else folder, rest)
            return
        if not glob.has_magic(head):
            names = [head] if os.path.lexists(os.path.join(here, head)) else []
        else:
            try:
                names = sorted(name for name in os.listdir(here) if _wildcard_takes(name, head))
            except OSError:
                names = []
        for name in names:
            path = os.path.join(base, name)
            if not rest:
                yield path
            elif os.path.isdir(path):
                yield from self._matches(path, rest)

    def expand(self, item: str) -> Iterator[InputFile]:
        path = local_path(item)
        if path is None:
            yield from self._expand_url(item)
        elif os.path.isdir(path):
            yield from self.walk(os.path.abspath(path))
        elif os.path.isfile(path) and is_url_list(path):
            for row in read_url_list(path, self.url_columns):
                yield InputFile(row.url, 0, row.columns, row.refusal, listed=True)
        elif os.path.isfile(path):
            if not self.output.holds_local(path):
                yield InputFile(os.path.abspath(path), os.stat(path).st_size)
        elif glob.has_magic(path):
            matches = list(self.glob_local(path))
            if not matches:
                raise InputError(f"no files match {item!r}")
            for match in matches:  # not globbed again: a name may hold "*" or "[" itself
                if os.path.isdir(match):
                    yield from self.walk(os.path.abspath(match))
                elif not self.output.holds_local(match):
                    yield InputFile(os.path.abspath(match), _size(match))
        else:
            raise InputError(f"input {item!r} does not exist")

    def _expand_url(self, url: str) -> Iterator[InputFile]:
        # a protocol not installed: UnsupportedURL
        filesystem, path = filesystem_for(url, self.storage_options)
        # fsspec keeps one filesystem per set of options, with the listings it made: a rerun
        # in the same process (a notebook) must see the objects added since
        filesystem.invalidate_cache()
        protocol = url.split("://", 1)[0]
        shown = redact_location(url)
        try:
            if glob.has_magic(path):
                found = filesystem.glob(path, detail=True)
                matches = sorted(name for name in found if not _hidden_by_pattern(path, name))
                if not matches:
                    raise InputError(f"no files match {shown!r}")
                for name in matches:
                    if found[name].get("type") == "directory":
                        yield from self._walk_url(filesystem, protocol, name)
                    elif not self.output.holds_remote(filesystem, name):
                        yield InputFile(f"{protocol}://{name}", int(found[name].get("size") or 0))
            elif filesystem.isdir(path):
                yield from self._walk_url(filesystem, protocol, path)
            elif filesystem.exists(path):
                if not self.output.holds_remote(filesystem, path):
                    yield InputFile(url, int(filesystem.size(path) or 0))
            else:
                raise InputError(f"input {shown!r} does not exist")
        except (OSError, ValueError, ImportError) as error:
            message = redact_text(str(error), url)
            raise InputError(f"cannot list input {shown!r}: {message}") from error

    def _walk_url(
        self, filesystem: fsspec.AbstractFileSystem, protocol: str, folder: str
    ) -> Iterator[InputFile]:
        """Every file below a folder of an object store or server, hidden ones left out like
        in a local walk: a file whose name, or any folder's name below ``folder``, starts with
        a dot. (Object stores have no links, so no loops.)"""
        found = filesystem.find(folder, detail=True)
        top = _normalised(folder)
        for name in sorted(found):
            below = _normalised(name)[len(top) :].strip("/").split("/")
            if any(_is_hidden(part) for part in below) or self.output.holds_remote(
                filesystem, name
            ):
                continue
            yield InputFile(f"{protocol}://{name}", int(found[name].get("size") or 0))


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # a dangling link, unreadable: the hash step will say why


def _identity(path: str) -> tuple[int, int] | None:
    """A folder's device and inode, the same through any link to it; None if it is gone."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _leads_back(entry: os.DirEntry[str], folder: str) -> bool:
    """Whether a link to a folder leads to the folder it is in or to one above it: a loop
    wherever the walk started (a walk that began below the target would not have it above)."""
    return entry.is_symlink() and _is_within(os.path.realpath(folder), os.path.realpath(entry.path))


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # follows a link: a link to a folder is walked
    except OSError:
        return False


def _hidden_by_pattern(pattern: str, match: str) -> bool:
    """Whether a URL glob's match reaches a hidden name through a wildcard: fsspec's ``*`` and
    ``**`` match dot-names, a local glob's do not; this makes the two agree."""
    pattern_parts = _normalised(pattern).strip("/").split("/")
    literal = 0
    while literal < len(pattern_parts) and not glob.has_magic(pattern_parts[literal]):
        literal += 1
    wildcards = [part for part in pattern_parts[literal:] if _is_hidden(part)]
    for part in _normalised(match).strip("/").split("/")[literal:]:
        if _is_hidden(part) and not any(fnmatch.fnmatch(part, p) for p in wildcards):
            return True
    return False


def local_root(name: str) -> str | None:
    """Where a local input starts: the path itself, or a glob's folder before its first
    wildcard (what must exist on every worker); None for a URL other than ``file://``."""
    path = local_path(name)
    if path is None:
        return None
    parts = path.split(os.sep)
    for index, part in enumerate(parts):
        if glob.has_magic(part):
            return os.sep.join(parts[:index]) or (os.sep if path.startswith(os.sep) else os.curdir)
    return path


def local_roots(names: Iterable[str]) -> list[str]:
    """``local_root`` of each local name, URLs left out: what the preflight checks."""
    return [root for root in map(local_root, names) if root is not None]


def url_roots(names: Iterable[str]) -> list[str]:
    """The URLs among ``names`` (``file://`` is a local path), a glob cut at the folder before
    its first wildcard: where each worker must be able to list. ``http(s)://`` names are left
    out: the workers fetch them one by one (``stages.http_fetch``) and never list a web server."""
    roots = []
    for name in names:
        if local_path(name) is not None or is_http(name):
            continue
        protocol, _, path = name.partition("://")
        parts = path.split("/")
        for index, part in enumerate(parts):
            if glob.has_magic(part):
                parts = parts[:index]
                break
        roots.append(f"{protocol}://{'/'.join(parts)}")
    return roots


def expand_inputs(
    items: Iterable[str | os.PathLike[str]],
    output_root: str | os.PathLike[str] | None = None,
    url_columns: UrlListColumns | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[InputFile]:
    """Every file the inputs name, in the order given (folders sorted), each listed once even
    when two inputs overlap, none of them inside ``output_root``. Local paths come back
    absolute: they travel to workers that may run in another folder. Raises ``InputError`` if
    an input is missing or nothing is found, ``UnsupportedURL`` (a ``ConfigError``) for a URL
    this installation cannot read; warns (``InputWarning``) of a symbolic link loop it skipped.
    ``url_columns``: how to read CSV/TSV/Parquet URL lists (``pipeline.url_lists``);
    ``storage_options`` are fsspec's for the URLs (credentials, endpoint)."""
    options = storage_options or {}
    output = _OutputRoot(None if output_root is None else os.fspath(output_root), options)
    expansion = _Expansion(output, options, url_columns or UrlListColumns())
    seen: set[str] = set()
    files: list[InputFile] = []
    for item in items:
        for found in expansion.expand(os.fspath(item)):
            if found.listed:
                files.append(found)
            elif found.source not in seen:
                seen.add(found.source)
                files.append(found)
    if not files:
        raise InputError("the inputs hold no files (the output folder is never an input)")
    return files
