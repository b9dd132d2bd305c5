"""How much of Dask's own logging reaches the user. Runs in the submitting process (its setting
is handed on to the worker processes of a LocalCluster it starts).

Dask logs for people debugging Dask: ports it moved, workers it had to kill while closing,
heartbeats and reconnects that failed once a scheduler went away, each with a traceback. Every
one of those that matters to a thumbflow user, thumbflow reports itself, in its own words (a
crashed image is a ``worker_died`` row, a lost scheduler one line saying that a rerun resumes).
So the CLI shows Dask's logs only when asked (``-v``), and closing a cluster we started is
silent whoever called us.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

DASK_LOGGER = "distributed"
NOTHING = logging.CRITICAL + 1  # a level no record reaches


def _set_level(level: int) -> list[tuple[logging.Logger | logging.Handler, int]]:
    """Set Dask's logger and its handlers to ``level``; returns what to restore. The handlers
    count: Dask gives some of its loggers their own level (``distributed.client``), and their
    records reach the ``distributed`` handler whatever that logger's own level is."""
    logger = logging.getLogger(DASK_LOGGER)
    previous: list[tuple[logging.Logger | logging.Handler, int]] = [(logger, logger.level)]
    logger.setLevel(level)
    for handler in logger.handlers:
        previous.append((handler, handler.level))
        handler.setLevel(level)
    return previous


def show_dask_logs(verbosity: int) -> None:
    """For the CLI: none of Dask's messages by default; its warnings with ``-v``, everything
    it says with ``-vv``."""
    _set_level({0: NOTHING, 1: logging.WARNING}.get(verbosity, logging.INFO))


def worker_log_level() -> int:
    """The level for the worker processes of a LocalCluster we start: no chattier than this
    process lets Dask be, and no chattier than warnings (Dask's default for them)."""
    return max(logging.WARNING, logging.getLogger(DASK_LOGGER).getEffectiveLevel())


@contextmanager
def dask_logs_silenced() -> Iterator[None]:
    """Within: nothing Dask logs in this process is shown. Wrapped around closing a cluster we
    started, whose shutdown messages ("still alive after 4 s, killing", a heartbeat that found
    the scheduler closed) say nothing about the batch."""
    previous = _set_level(NOTHING)
    try:
        yield
    finally:
        for item, level in reversed(previous):
            item.setLevel(level)
