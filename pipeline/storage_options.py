"""``storage_options``: what a user gives fsspec to reach an object store (credentials, an
``endpoint_url``, a profile). Runs in every process: built in the submitting one, it travels to
the workers inside the tasks that read inputs and write outputs.

They often hold secrets (``key``, ``secret``, ``token``, an ``account_key``), so their repr names
the options and never a value: a handle, a root or a task printed in a log shows no credential.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class StorageOptions(dict[str, Any]):
    """fsspec's keyword arguments for a filesystem, with a repr that shows no value."""

    def __repr__(self) -> str:
        return f"StorageOptions({', '.join(sorted(self)) or 'none'}; values not shown)"

    __str__ = __repr__

    @classmethod
    def of(cls, options: Mapping[str, Any] | None) -> StorageOptions:
        return options if isinstance(options, StorageOptions) else cls(options or {})
