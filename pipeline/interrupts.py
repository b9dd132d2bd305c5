"""SIGINT and SIGTERM as a clean cancel, for the CLI. Runs in the main thread of the CLI.

Ctrl-C sends SIGINT; ``docker stop``, systemd, ``timeout`` and CI cancellation send SIGTERM.
Python turns only SIGINT into ``KeyboardInterrupt``, and not even that when the process started
with SIGINT ignored, as a non-interactive shell starts a background job (``thumbflow run … &``):
a ``kill -INT`` would then do nothing, and SIGTERM kills at once, leaving a ``.partial``
manifest, no summary and Redis saying ``running``. While a batch runs, both signals raise
``Interrupted`` in the main thread instead, so the CLI can cancel, finish the manifest and exit
with 128 + the signal's number, as a shell expects.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from types import FrameType
from typing import Any

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """A stop signal arrived. A BaseException, like KeyboardInterrupt, so that no ``except
    Exception`` on the way swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def description(self) -> str:
        return "interrupted" if self.signum == signal.SIGINT else "terminated (SIGTERM)"


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


@contextmanager
def _handled_by(
    handler: _Handler, signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; a library caller keeps its own
        return
    previous = {signum: signal.signal(signum, handler) for signum in signals}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def stop_signals_raise() -> AbstractContextManager[None]:
    """Within: SIGINT and SIGTERM raise ``Interrupted`` in the main thread."""
    return _handled_by(_raise_interrupted)


def stop_signals_ignored() -> AbstractContextManager[None]:
    """Within: SIGINT and SIGTERM are ignored. Wrapped around the cancel that follows an
    ``Interrupted``, so a second Ctrl-C cannot leave the manifest unfinished."""
    return _handled_by(signal.SIG_IGN)


def terminal_interrupts_ignored() -> AbstractContextManager[None]:
    """Within: SIGINT is ignored, and so it is in processes started meanwhile (an ignored signal
    stays ignored across exec). Wrapped around starting LocalCluster workers: the terminal's
    Ctrl-C goes to the whole process group, and workers that took it would print their own
    tracebacks while the CLI cancels the batch. SIGTERM stays theirs: it is how their nanny
    stops them."""
    return _handled_by(signal.SIG_IGN, (signal.SIGINT,))
