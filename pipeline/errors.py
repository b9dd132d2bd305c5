"""What can go wrong, in two kinds. Used in every process: failures are made on the workers,
exceptions raised in the user's process.

Infrastructure and usage problems are exceptions; they stop a batch before (or while) it runs::

    ThumbflowError
    ├── ConfigError          a setting is out of range or malformed (also a ValueError)
    │   └── UnsupportedURL   a URL's protocol is unknown, or the package for it is not installed
    ├── InputError           an input path does not exist or holds no files
    ├── OutputError          the output root cannot be created or written
    ├── ClusterError         the scheduler cannot be reached or the cluster cannot run thumbflow
    │   └── ClusterLost      the scheduler went away while the batch ran (a rerun resumes)
    ├── ProgressStoreUnavailable   Redis cannot be reached (status, cancel, require_redis)
    └── BatchNotFound        no batch with that id (never existed, or its records expired)

    ProgressStoreWarning     (a warning, not an error) Redis is unreachable at submit; the batch
                             runs, and its progress is written if Redis comes back
    InputWarning             (a warning) part of the inputs was skipped: a symbolic link loop

A problem with one image is a ``Failure`` *value*: it travels through the graph like a result, is
written to the manifest, and never stops the rest of the batch. Its ``code`` is stable and meant
for programs; its ``message`` is for people.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal


class ThumbflowError(Exception):
    """Base of every exception thumbflow raises on purpose."""


class ConfigError(ThumbflowError, ValueError):
    """A setting is out of range or malformed."""


class UnsupportedURL(ConfigError):
    """An input or output URL whose protocol this installation cannot use: fsspec does not know
    it, or the package that implements it is not installed (the message names what to install).
    """


class InputError(ThumbflowError):
    """An input path does not exist, cannot be listed, or holds no files."""


class OutputError(ThumbflowError):
    """The output root cannot be created or written."""


class ClusterError(ThumbflowError):
    """The scheduler cannot be reached, or the cluster cannot run this version of thumbflow."""


class ClusterLost(ClusterError):
    """The scheduler went away (or restarted) while a batch ran, and its work with it. What was
    finished stays on disk, so running the same batch again resumes it."""


class ProgressStoreUnavailable(ThumbflowError):
    """Redis could not be reached (or answered with an error)."""


class BatchNotFound(ThumbflowError):
    """No batch with that id in this process or the progress store."""


class InputWarning(UserWarning):
    """Something in the inputs was left out and the batch goes on (a symbolic link loop)."""


class ProgressStoreWarning(UserWarning):
    """Redis was configured but could not be reached; the batch runs without it for now."""


# The four steps of every image, in order; also the step names of the graph's task keys.
Step = Literal["hash", "validate", "resize", "encode"]
FailureCode = Literal[
    "unreadable",  # the source could not be read (missing, permission, I/O)
    "empty_file",
    "file_too_large",
    "not_an_image",
    "unsupported_format",
    "too_many_pixels",  # over max_pixels or max_decoded_pixels; the message names which
    "too_many_frames",
    "truncated",
    "decode_error",
    "encode_error",
    "write_error",
    "changed_during_batch",  # the file's bytes changed between hashing and decoding
    # URLs (pipeline.stages.http_fetch, pipeline.url_lists)
    "bad_url",  # a URL list's row holds no http(s):// URL (an empty cell, another scheme)
    "http_error",  # the server answered with an error status; the message names it
    "timeout",  # no byte for the fetch timeout, or the whole fetch took over its deadline
    "too_large",  # the body announced or sent more than max_file_bytes (never read past it)
    "unreachable",  # no connection (refused, reset, name unknown) after every retry
    "too_many_redirects",  # more redirects than allowed: a loop, or a chain too long
    "incomplete_download",  # the body ended before its announced length, after every retry
    "worker_died",  # decoding it killed its worker every time it was tried (memory, a crash)
    "internal_error",  # a bug in thumbflow; the message carries the exception
]


@dataclass(frozen=True)
class Failure:
    """Why one image produced no derivatives. Plain fields only, so it pickles across workers."""

    step: Step
    code: FailureCode
    message: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


class ImageError(Exception):
    """Raised inside a stage to abandon one image; caught at the stage boundary and turned into
    its ``failure`` value. Never leaves the stage functions."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure
