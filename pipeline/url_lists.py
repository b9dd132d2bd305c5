"""URL lists as input: a text file, CSV/TSV or Parquet file of ``http(s)://`` URLs, one input
per row. Runs in the submitting process (the workers fetch the URLs: ``pipeline.worker.fetched``).

The rule: an input *named directly* whose name ends in ``.txt``, ``.csv``, ``.tsv`` or
``.parquet`` is a URL list. The same files met in a folder walk or through a glob are ordinary
inputs (and fail as ``not_an_image``): a folder of photos with a ``notes.txt`` in it stays a
folder of photos.

- text: one URL a line; blank lines and lines starting with ``#`` are skipped.
- CSV/TSV: a header row; the URL is in the ``url_column`` (``url`` unless told otherwise).
- Parquet (needs pyarrow: ``pip install 'thumbflow[parquet]'``): the same, by column name.

Every row is one input, so every row has one manifest row: an empty cell or something that is
not an http(s) URL is a ``bad_url`` failure of that row, not an error of the batch. The columns
named in ``keep_columns`` travel to the row's ``columns`` in the manifest. A missing column, an
unreadable file or a Parquet file without pyarrow is an ``InputError``/``ConfigError`` before
anything starts.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError, Failure, InputError
from pipeline.stages.http_fetch import url_problem

URL_LIST_SUFFIXES = (".txt", ".csv", ".tsv", ".parquet")


@dataclass(frozen=True)
class UrlListColumns:
    """Which column of a CSV/TSV/Parquet URL list holds the URL, and which to carry along."""

    url_column: str = "url"
    keep_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.keep_columns, str):
            raise ConfigError("keep_columns: a tuple of column names, e.g. ('caption', 'id')")
        if not self.url_column:
            raise ConfigError("url_column: a column name, e.g. 'url'")


@dataclass(frozen=True)
class UrlRow:
    """One row of a URL list: its URL (as written), where it is, what it carries, and why it
    cannot be fetched (None if it can)."""

    url: str
    where: str
    columns: Mapping[str, Any] | None
    refusal: Failure | None


def is_url_list(path: str) -> bool:
    return path.lower().endswith(URL_LIST_SUFFIXES)


def read_url_list(path: str, columns: UrlListColumns) -> Iterator[UrlRow]:
    """Every row of the list at ``path``, in order."""
    name = os.path.basename(path)
    lowered = path.lower()
    try:
        if lowered.endswith(".txt"):
            if columns.keep_columns:
                raise ConfigError(
                    f"{path}: a text URL list has no columns to keep; use a CSV, TSV or "
                    "Parquet file for keep_columns (--keep-column)"
                )
            yield from _text_rows(path, name)
        elif lowered.endswith(".parquet"):
            yield from _table_rows(path, name, _parquet_records(path), columns)
        else:
            delimiter = "\t" if lowered.endswith(".tsv") else ","
            yield from _table_rows(path, name, _csv_records(path, delimiter), columns)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise InputError(f"cannot read the URL list {path}: {error}") from error


def _row(url: str, where: str, columns: Mapping[str, Any] | None) -> UrlRow:
    problem = "an empty URL" if not url else url_problem(url)
    refusal = None if problem is None else Failure("hash", "bad_url", f"{where}: {problem}")
    return UrlRow(url, where, columns, refusal)


def _text_rows(path: str, name: str) -> Iterator[UrlRow]:
    with open(path, encoding="utf-8-sig") as lines:
        for number, line in enumerate(lines, start=1):
            url = line.strip()
            if url and not url.startswith("#"):
                yield _row(url, f"{name} line {number}", None)


def _csv_records(path: str, delimiter: str) -> tuple[list[str], Iterator[Sequence[Any]]]:
    handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by rows())
    reader = csv.reader(handle, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        handle.close()
        return [], iter(())

    def rows() -> Iterator[Sequence[Any]]:
        with handle:
            yield from reader

    return [column.strip() for column in header], rows()


def _parquet_records(path: str) -> tuple[list[str], Iterator[Sequence[Any]]]:
    try:
        import pyarrow.parquet as parquet  # an extra: thumbflow[parquet]
    except ImportError:
        raise ConfigError(
            f"{path}: reading a Parquet URL list needs pyarrow: pip install 'thumbflow[parquet]'"
        ) from None
    try:
        table = parquet.read_table(path)
    except Exception as error:  # pyarrow's own error types for a damaged file
        raise InputError(f"cannot read the URL list {path}: {error}") from error
    names = list(table.column_names)

    def rows() -> Iterator[Sequence[Any]]:
        for batch in table.to_batches():
            data = [column.to_pylist() for column in batch.columns]
            yield from zip(*data, strict=True)

    return names, rows()


def _table_rows(
    path: str,
    name: str,
    records: tuple[list[str], Iterator[Sequence[Any]]],
    columns: UrlListColumns,
) -> Iterator[UrlRow]:
    header, rows = records
    wanted = [columns.url_column, *columns.keep_columns]
    missing = [column for column in wanted if column not in header]
    if missing:
        shown = ", ".join(repr(column) for column in header) or "none"
        raise InputError(
            f"the URL list {path} has no column {', '.join(map(repr, missing))} (its columns: "
            f"{shown}); name the URL column with --url-column (url_column=)"
        )
    url_at = header.index(columns.url_column)
    kept_at = [(column, header.index(column)) for column in columns.keep_columns]
    for number, record in enumerate(rows, start=1):
        cells = list(record)
        cells += [None] * (len(header) - len(cells))  # a short CSV line: its last cells empty
        url = "" if cells[url_at] is None else str(cells[url_at]).strip()
        carried = {column: _plain(cells[index]) for column, index in kept_at}
        yield _row(url, f"{name} row {number}", carried if columns.keep_columns else None)


def _plain(value: Any) -> Any:
    """A value the manifest's JSON can hold as it is; anything else (a date, bytes) as text."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
