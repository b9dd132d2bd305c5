"""What an input or output name means: a local path, or a URL and the fsspec filesystem behind it.
Runs in the submitting process (inputs, the output root) and on the workers (the output root is
rebuilt there from its URL).

``file://`` names a local path: it takes the same road as the plain path, so a batch over
``file:///photos`` reads, lists and records exactly what one over ``/photos`` does. Any other
``protocol://`` goes to fsspec, and a protocol this installation cannot use is refused with a
``UnsupportedURL`` saying what to install, before any cluster is started.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import fsspec
from fsspec.registry import known_implementations

from pipeline.errors import UnsupportedURL
from pipeline.redaction import redact_location

FILE_PREFIX = "file://"

# thumbflow's extras for the object stores people use most (pyproject.toml); any other protocol
# gets fsspec's own advice.
EXTRAS = {
    "s3": "s3",
    "s3a": "s3",
    "gcs": "gcs",
    "gs": "gcs",
    "az": "az",
    "abfs": "az",
    "abfss": "az",
}

# Protocols whose "folders" are only key prefixes: nothing to create before writing a key.
OBJECT_STORES = frozenset(EXTRAS) | {"gs", "adl"}


def local_path(name: str) -> str | None:
    """The local path ``name`` means (``file://`` removed), or None for any other URL."""
    if name.startswith(FILE_PREFIX):
        return name.removeprefix(FILE_PREFIX)
    return None if "://" in name else name


def filesystem_for(
    url: str, storage_options: Mapping[str, Any] | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem of a URL and the path inside it; ``UnsupportedURL`` if this installation
    has no implementation for (any step of) its protocol. A local path is fsspec's too.
    ``storage_options`` go to the URL's filesystem (credentials, ``endpoint_url``…); a local
    path takes none."""
    if local_path(url) is not None:
        filesystem, path = fsspec.core.url_to_fs(url)
        return filesystem, str(path)
    for protocol in _protocols(url):
        if protocol not in fsspec.available_protocols():
            raise UnsupportedURL(
                f"{redact_location(url)}: unknown protocol {protocol}:// (thumbflow reads and "
                "writes local paths, file:// and the fsspec protocols, e.g. s3://, gcs://)"
            )
    try:
        filesystem, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    except ImportError as error:
        raise UnsupportedURL(_missing_package(url, error)) from None
    except ValueError as error:  # fsspec's words for a protocol it cannot parse out
        raise UnsupportedURL(f"{redact_location(url)}: {error}") from None
    return filesystem, str(path)


def _protocols(url: str) -> list[str]:
    """Every protocol of a URL, also of a chained one (``simplecache::s3://bucket/key``)."""
    return [part.partition("://")[0].lower() for part in url.split("::")]


def _missing_package(url: str, error: ImportError) -> str:
    """One line naming what to install: thumbflow's extra where it has one, else the package
    fsspec names (or, for a protocol whose own import failed, fsspec's words)."""
    for protocol in _protocols(url):
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError:
            pass
        else:
            continue
        module = str(known_implementations.get(protocol, {}).get("class", "")).split(".")[0]
        if protocol in EXTRAS:
            advice = f"pip install 'thumbflow[{EXTRAS[protocol]}]'"
        else:
            advice = str(known_implementations.get(protocol, {}).get("err") or error)
        if module == "fsspec":  # fsspec's own implementation, missing a package it imports
            return f"{redact_location(url)}: {protocol}:// cannot be used here: {advice}"
        return (
            f"{redact_location(url)}: {protocol}:// needs {module}, which is not installed; "
            f"{advice} (on every worker too)"
        )
    return f"{redact_location(url)}: {error}"
