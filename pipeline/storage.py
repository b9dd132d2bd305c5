"""Where outputs go and how they get there: content-addressed paths, atomic writes, records.

Layout under the output root::

    ab/abcdef…/large.jpg         derivatives of the image whose SHA-256 is abcdef…
    ab/abcdef…/record.json       what was made there, and under which config fingerprint
    manifests/<batch id>.jsonl   one row per input of that batch

Paths depend only on content, so duplicates and reruns land on the same files, and a rerun with
the same settings finds ``record.json`` and does not redo the image. Every file appears by
rename from a temporary name in the same folder, so a reader never sees a partial file.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipeline.errors import OutputError
from pipeline.stages.sources import is_url

RECORD_NAME = "record.json"


class WriteAbandoned(Exception):
    """A write was dropped at the last moment because its result is no longer wanted."""


class OutsideOutputRoot(OutputError, OSError):
    """A local write would leave the output root: a symbolic link on the way leads out. An
    ``OSError`` too, so that a worker reports it as the image's ``write_error``."""


def _is_within(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


# A file being written is named ``<final name>.tmp-<owner>.<random hex>``; its owner is
# ``<batch id>.<worker tag>``, so that after a worker died, the temporaries it left can be told
# from those of the same batch on live workers and from a concurrent batch writing the same image.
TEMPORARY_MARK = ".tmp-"


def temporary_owner(batch_id: str, worker_address: str) -> str:
    """Who writes a temporary file: a batch, on one worker (a short tag of its address)."""
    return f"{batch_id}.{hashlib.sha256(worker_address.encode()).hexdigest()[:8]}"


def owner_of_temporary(name: str) -> str | None:
    """The owner written into a temporary file's name; None for any other file."""
    _, mark, rest = name.rpartition(TEMPORARY_MARK)
    if not mark:
        return None
    owner, _, _random = rest.rpartition(".")
    return owner


def image_folder(sha256: str) -> str:
    """Relative folder of one image's outputs; two hex digits of fan-out keep folders small."""
    return f"{sha256[:2]}/{sha256}"


class OutputRoot:
    """An output folder, local or any fsspec URL, that outputs are written into atomically."""

    def __init__(self, url: str) -> None:
        # A relative local path would mean another folder to a worker started elsewhere.
        url = url if is_url(url) else os.path.abspath(url.removeprefix("file://"))
        self.url = url.rstrip("/") or "/"
        filesystem, path = fsspec.core.url_to_fs(self.url)
        self._fs: fsspec.AbstractFileSystem = filesystem
        self._path: str = path
        self._local = isinstance(filesystem, LocalFileSystem)

    def __repr__(self) -> str:
        return f"OutputRoot({self.url!r})"

    def __reduce__(self) -> tuple[type[OutputRoot], tuple[str]]:
        # Travel as the URL: the filesystem object is rebuilt on the worker.
        return OutputRoot, (self.url,)

    def full_path(self, relative: str) -> str:
        """The path inside the root's filesystem (no protocol): for this module's fsspec calls."""
        return f"{self._path}/{relative}"

    def location(self, relative: str) -> str:
        """Where a user finds ``relative``: a local path, or a URL with its protocol."""
        return f"{self.url}/{relative}"

    def check_writable(self) -> None:
        """Create the root and prove a file can be written there, or raise ``OutputError``."""
        probe = f".thumbflow-probe-{uuid.uuid4().hex}"
        try:
            self._fs.makedirs(self._path, exist_ok=True)
            self.write_atomic(probe, b"")
            self._fs.rm(self.full_path(probe))
        except OSError as error:
            raise OutputError(f"output {self.url!r} is not writable: {error}") from error

    def write_atomic(
        self,
        relative: str,
        data: bytes,
        still_wanted: Callable[[], bool] = lambda: True,
        owner: str = "",
    ) -> None:
        """Write ``data`` so that the file at ``relative`` is either absent, old, or complete.

        ``still_wanted`` is asked just before the rename: a cancelled batch's task that is still
        running then drops its temporary file instead of publishing it. ``owner`` goes into the
        temporary file's name (see ``temporary_owner``).
        """
        final = self.full_path(relative)
        folder = final.rsplit("/", 1)[0]
        temporary = f"{final}{TEMPORARY_MARK}{owner}.{uuid.uuid4().hex}"
        if self._local:
            # The rename replaces a link at ``final`` itself, so only the folder matters.
            self._refuse_links_out(relative.rpartition("/")[0])
            os.makedirs(folder, exist_ok=True)
            try:
                with open(temporary, "wb") as stream:
                    stream.write(data)
                if not still_wanted():
                    raise WriteAbandoned(final)
                os.replace(temporary, final)
            except BaseException:
                # Any path out, even KeyboardInterrupt or a cancelled task, removes the temp file.
                if os.path.exists(temporary):
                    os.unlink(temporary)
                raise
            return
        self._fs.makedirs(folder, exist_ok=True)
        try:
            with self._fs.open(temporary, "wb") as stream:
                stream.write(data)
            if not still_wanted():
                raise WriteAbandoned(final)
            self._fs.mv(temporary, final)
        except BaseException:
            if self._fs.exists(temporary):
                self._fs.rm(temporary)
            raise

    @property
    def is_local(self) -> bool:
        return self._local

    def remove_temporaries(self, folder: str, orphaned: Callable[[str], bool]) -> int:
        """Delete the temporary files in ``folder`` whose owner is ``orphaned``; returns how
        many. A worker killed mid-write leaves its temporary file behind (its task's rerun
        elsewhere wrote the real one); only the caller knows which owners can write no more."""
        try:
            self._refuse_links_out(folder)  # never delete anything outside the root
            names = self._fs.ls(self.full_path(folder), detail=False)
        except OSError:
            return 0
        removed = 0
        for name in names:
            owner = owner_of_temporary(str(name).rsplit("/", 1)[-1])
            if owner is not None and orphaned(owner):
                try:
                    self._fs.rm(name)
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def read_json(self, relative: str) -> Any | None:
        """The JSON document at ``relative``, or None if it is missing or unreadable."""
        try:
            with self._fs.open(self.full_path(relative), "rb") as stream:
                return json.load(stream)
        except (OSError, ValueError):
            return None

    def open_text_for_writing(self, relative: str) -> Any:
        full = self.full_path(relative)
        self._refuse_links_out(relative)  # written in place: a link at the file itself counts
        self._fs.makedirs(full.rsplit("/", 1)[0], exist_ok=True)
        return self._fs.open(full, "w", encoding="utf-8")

    def rename(self, relative_from: str, relative_to: str) -> None:
        self._refuse_links_out(relative_to.rpartition("/")[0])
        self._fs.mv(self.full_path(relative_from), self.full_path(relative_to))

    def _refuse_links_out(self, relative: str) -> None:
        """Raise ``OutsideOutputRoot`` if ``relative`` (a local file or folder under the root,
        existing or not) really lies outside the root once symbolic links are followed, naming
        the link that leads out. Links that stay inside the root are fine, and so is a root that
        is itself a link. Object stores have no links: nothing to check there."""
        if not self._local or not relative:
            return
        real_root = os.path.realpath(self._path)
        if _is_within(os.path.realpath(self.full_path(relative)), real_root):
            return
        parts = relative.split("/")
        for depth in range(1, len(parts) + 1):
            step = "/".join(parts[:depth])
            target = os.path.realpath(self.full_path(step))
            if os.path.islink(self.full_path(step)) and not _is_within(target, real_root):
                raise OutsideOutputRoot(
                    f"{step!r} is a symbolic link to {target}, outside the output root "
                    f"{self.url}: thumbflow does not write through it"
                )
        raise OutsideOutputRoot(f"{relative!r} lies outside the output root {self.url}")

    def exists(self, relative: str) -> bool:
        return bool(self._fs.exists(self.full_path(relative)))
