"""Where outputs go and how they get there: content-addressed paths, atomic writes, records.
Runs on the workers (writes, records) and in the driver (manifests, the orphan sweep).

Layout under the output root::

    ab/abcdef…/large-3f9a1c2b4d5e.jpg   a derivative of the image whose SHA-256 is abcdef…,
                                        named by its size and by what shaped its bytes
    ab/abcdef…/record-<config>.json     what one config made there (written last)
    manifests/<batch id>.jsonl          one row per input of that batch

The folder comes from the source's content, the file name from the settings that shape that one
file (``PipelineConfig.output_name``: its box, every box of the cascade, its format's encoder
knobs, colour and metadata options, background where it shows, a render version). So
duplicates and reruns land on the same files, while other settings never write a path an
earlier manifest lists: those files stay byte-identical, whatever runs later into the root.

A record lists each output with its size in bytes and its SHA-256, and which truncation policy
made it. A rerun reuses an output only if the file is there with exactly that size and digest
(a damaged one is made again), and not one made while accepting truncated files when it refuses
them. Outputs shared by two settings (a JPEG whose settings did not change while the AVIF's
did) are found in the other settings' records. On a local disk every file appears by rename
from a temporary name in the same folder, so a reader never sees a partial file. An object store
has no rename (fsspec's ``mv`` is a copy, then a delete: the temporary would be visible), but it
publishes an object only once its upload completes: there each file is one PUT of its whole
bytes, and nothing else is ever written next to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from pipeline.errors import OutputError
from pipeline.locations import OBJECT_STORES, filesystem_for, local_path
from pipeline.results import OutputFile
from pipeline.storage_options import StorageOptions

RECORD_PREFIX = "record-"


def record_name(config_fingerprint: str) -> str:
    """The record of what one config made in an image's folder."""
    return f"{RECORD_PREFIX}{config_fingerprint}.json"


def is_record_name(name: str) -> bool:
    return name.startswith(RECORD_PREFIX) and name.endswith(".json")


@dataclass(frozen=True)
class RecordedOutput:
    """One derivative as its record knows it: enough to tell whether the file is still it."""

    output: OutputFile
    sha256: str

    @classmethod
    def of(cls, output: OutputFile, data: bytes) -> RecordedOutput:
        return cls(output, hashlib.sha256(data).hexdigest())

    def to_json(self) -> dict[str, Any]:
        return {**self.output.to_json(), "sha256": self.sha256}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> RecordedOutput:
        return cls(OutputFile.from_json(row), str(row["sha256"]))


@dataclass(frozen=True)
class Record:
    """What one config made for one image. ``accept_truncated``: made by a batch that accepted
    files ending early, so possibly from part of the file (not for a batch that refuses them)."""

    accept_truncated: bool
    outputs: tuple[RecordedOutput, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "accept_truncated": self.accept_truncated,
            "outputs": [output.to_json() for output in self.outputs],
        }

    @classmethod
    def from_json(cls, document: Any) -> Record | None:
        """The record, or None for anything else (an older layout, a damaged file)."""
        try:
            outputs = tuple(RecordedOutput.from_json(row) for row in document["outputs"])
            return cls(bool(document["accept_truncated"]), outputs)
        except (KeyError, TypeError, ValueError):
            return None


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


def _protocol(filesystem: fsspec.AbstractFileSystem) -> str:
    protocol = filesystem.protocol
    return str(protocol if isinstance(protocol, str) else protocol[0])


def image_folder(sha256: str) -> str:
    """Relative folder of one image's outputs; two hex digits of fan-out keep folders small."""
    return f"{sha256[:2]}/{sha256}"


class OutputRoot:
    """An output folder, local or any fsspec URL, that outputs are written into atomically."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        # A relative local path would mean another folder to a worker started elsewhere.
        local = local_path(url)
        url = url if local is None else os.path.abspath(local)
        self.url = url.rstrip("/") or "/"
        # fsspec's options for the batch's URLs (credentials, endpoint): inputs are read with
        # them too, so they ride along wherever the root goes. Never shown (see StorageOptions).
        self.storage_options = StorageOptions.of(storage_options)
        # A protocol this installation cannot use: ``UnsupportedURL``, naming what to install.
        filesystem, path = filesystem_for(self.url, self.storage_options)
        self._fs: fsspec.AbstractFileSystem = filesystem
        self._path: str = path
        self._local = isinstance(filesystem, LocalFileSystem)
        # An object store's keys need no folders: s3fs's makedirs is a request to the bucket
        # (a HEAD) per call, 7 per image (the root's own is made by ``check_writable``).
        self._keys_need_no_folders = _protocol(filesystem) in OBJECT_STORES

    def __repr__(self) -> str:
        return f"OutputRoot({self.url!r})"

    def __reduce__(self) -> tuple[type[OutputRoot], tuple[str, StorageOptions]]:
        # Travel as the URL and its options: the filesystem object is rebuilt on the worker.
        return OutputRoot, (self.url, self.storage_options)

    def full_path(self, relative: str) -> str:
        """The path inside the root's filesystem (no protocol): for this module's fsspec calls."""
        return f"{self._path}/{relative}"

    def location(self, relative: str) -> str:
        """Where a user finds ``relative``: a local path, or a URL with its protocol."""
        return f"{self.url}/{relative}"

    def check_writable(self) -> None:
        """Create the root and prove a file can be written there, or raise ``OutputError``."""
        if self._local and os.path.isfile(self._path):
            # In the CLI's words too (``-o`` is checked before a cluster starts).
            raise OutputError(f"output {self.url!r} is a file, not a folder")
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
        # An object store: one PUT of the whole bytes, which the store publishes only complete.
        if not still_wanted():
            raise WriteAbandoned(final)
        if not self._keys_need_no_folders:
            self._fs.makedirs(folder, exist_ok=True)
        self._fs.pipe_file(final, data)

    @property
    def is_local(self) -> bool:
        return self._local

    def remove_temporaries(self, folder: str, orphaned: Callable[[str], bool]) -> int:
        """Delete the temporary files in ``folder`` whose owner is ``orphaned``; returns how
        many. A worker killed mid-write leaves its temporary file behind (its task's rerun
        elsewhere wrote the real one); only the caller knows which owners can write no more."""
        try:
            self._refuse_links_out(folder)  # never delete anything outside the root
            self._fs.invalidate_cache(self.full_path(folder))
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

    def open_for_publishing(self, relative: str) -> tuple[Any, str]:
        """A text stream for a file written bit by bit (the manifest) and the name it is
        written under: locally a ``.partial`` file that ``publish`` renames into place; on an
        object store the file itself, which appears only when the stream closes (complete)."""
        written = f"{relative}.partial" if self._local else relative
        return self.open_text_for_writing(written), written

    def publish(self, written: str, relative: str) -> None:
        """Make a file opened by ``open_for_publishing`` appear at ``relative`` (once closed)."""
        if written != relative:
            self.rename(written, relative)

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

    def read_record(self, relative: str) -> Record | None:
        return Record.from_json(self.read_json(relative))

    def records_in(self, folder: str) -> dict[str, Record]:
        """Every readable record in ``folder``, by file name (one listing, then one read each)."""
        try:
            # a listing fsspec cached for an earlier batch in this process would miss records
            self._fs.invalidate_cache(self.full_path(folder))
            names = [
                str(name).rsplit("/", 1)[-1]
                for name in self._fs.ls(self.full_path(folder), detail=False)
            ]
        except OSError:
            return {}
        found = {
            name: self.read_record(f"{folder}/{name}") for name in names if is_record_name(name)
        }
        return {name: record for name, record in found.items() if record is not None}

    def holds(self, recorded: RecordedOutput) -> bool:
        """Whether the file is there with exactly the recorded size and SHA-256. Reads it whole:
        derivatives are small, and this is what makes reusing one safe."""
        expected = recorded.output.bytes
        try:
            with self._fs.open(self.full_path(recorded.output.path), "rb") as stream:
                data = stream.read(expected + 1)
        except OSError:
            return False
        return len(data) == expected and hashlib.sha256(data).hexdigest() == recorded.sha256
