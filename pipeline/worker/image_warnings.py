"""Warnings raised while one image is processed, kept for its manifest row instead of printed.
Runs on the workers (around every step, in ``pipeline.worker.tasks``).

Pillow warns about damaged metadata ("Possibly corrupt EXIF data", "Truncated File Read", a
malformed MPO...) through Python's ``warnings``. On a worker they went to its stderr, which a
LocalCluster shares with the terminal: 1,286 lines for a folder of 1,800 real-world files.

``warnings.catch_warnings`` cannot be used per image: it swaps the process-wide filters and
``showwarning`` on entry and puts them back on exit, so with two threads per worker one thread's
exit would undo the other's capture (its warnings printed again, or recorded on another image).
Instead one hook, installed once per process, replaces ``showwarning`` and hands each warning to
whatever list the *calling thread* is collecting into (a thread-local); a thread collecting
nothing prints as before. A filter makes Pillow's warnings "always" shown, so the second image
with the same warning records it too (the default shows each text once per process).

libtiff's own warnings (C, not Python) never reach either: Pillow 13 silences libtiff's warning
handler (measured: a TIFF with unsorted tags makes libtiff print a warning when opened directly,
and nothing at all through Pillow).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

MAX_WARNINGS = 10
MAX_LENGTH = 200
_MAX_COLLECTED = 100  # per step, before deduplication

_PILLOW = r"PIL(\.|$)"
_this_thread = threading.local()
_install_lock = threading.Lock()
_previous: Any = warnings.showwarning  # what a thread collecting nothing shows warnings with


def _show(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    collected: list[str] | None = getattr(_this_thread, "collected", None)
    if collected is None:
        _previous(message, category, filename, lineno, file, line)
        return
    if len(collected) >= _MAX_COLLECTED:  # a TIFF of a million bad tags warns a million times
        return
    text = str(message).strip()
    if category is not UserWarning:  # Pillow's are UserWarning: only others are worth naming
        text = f"{category.__name__}: {text}"
    collected.append(text if len(text) <= MAX_LENGTH else text[: MAX_LENGTH - 1] + "…")


def _ensure_installed() -> None:
    """Install the hook and the filter, again if something (``catch_warnings`` anywhere in the
    process, pytest between tests) has put the old ones back since."""
    global _previous
    if warnings.showwarning is _show and _has_filter():
        return
    with _install_lock:
        if warnings.showwarning is not _show:
            _previous = warnings.showwarning
            warnings.showwarning = _show
        if not _has_filter():
            warnings.filterwarnings("always", module=_PILLOW)


def _has_filter() -> bool:
    return any(
        action == "always" and module is not None and module.pattern == _PILLOW
        for action, _, _, module, _ in warnings.filters
    )


@contextmanager
def collecting() -> Iterator[list[str]]:
    """Collect what this thread warns until the block ends; the list is filled in place."""
    _ensure_installed()
    outer = getattr(_this_thread, "collected", None)
    collected: list[str] = []
    _this_thread.collected = collected
    try:
        yield collected
    finally:
        _this_thread.collected = outer


def merged(earlier: tuple[str, ...], new: list[str]) -> tuple[str, ...]:
    """``earlier`` and then ``new``, each text once, at most ``MAX_WARNINGS`` of them."""
    return tuple(dict.fromkeys((*earlier, *new)))[:MAX_WARNINGS]
