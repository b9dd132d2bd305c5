"""Checkers for the CLI's option values, used as argparse ``type=``: a value that makes no sense
(``--workers 0``, ``--redis http://x``, ``-o`` naming a file) is refused while the command line
is parsed, with argparse's one-line usage error and exit status 2, before anything starts. Runs
in the user's process.

Every message quotes what was typed, except a Redis URL, which may hold a password: that is
shown redacted.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

from pipeline.errors import ConfigError
from pipeline.progress.store import connect

_Number = TypeVar("_Number", int, float)
_Parsed = TypeVar("_Parsed")


def _number(kind: type[_Number], text: str) -> _Number:
    try:
        value = kind(text)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
    if value != value or value in (float("inf"), float("-inf")):  # nan, inf
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_int(text: str) -> int:
    value = _number(int, text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be 1 or more")
    return value


def positive_float(text: str) -> float:
    value = _number(float, text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: must be more than 0")
    return value


def int_between(low: int, high: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        value = _number(int, text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text!r}: must be {low}..{high}")
        return value

    check.__name__ = f"int {low}..{high}"  # what argparse calls the type in its own messages
    return check


def parsed_by(parse: Callable[[str], _Parsed]) -> Callable[[str], _Parsed]:
    """A checker from a parser that raises ``ConfigError`` (``Size.parse``, ``Encoding.parse``):
    its message becomes argparse's usage error."""

    def check(text: str) -> _Parsed:
        try:
            return parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    check.__name__ = getattr(parse, "__name__", "value")
    return check


def redis_url(text: str) -> str:
    """A URL redis-py can use (checked without connecting); the default from
    ``$THUMBFLOW_REDIS_URL`` goes through here too."""
    try:
        connect(text)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def output_location(text: str) -> str:
    """An output folder or URL. A local path that names an existing file is refused now: the
    batch would otherwise start a cluster only to find it cannot write there."""
    parts = urlsplit(text)
    local = parts.path if parts.scheme == "file" else text if len(parts.scheme) <= 1 else None
    if local is not None and os.path.isfile(local):
        raise argparse.ArgumentTypeError(f"{text!r} is a file, not a folder")
    return text
