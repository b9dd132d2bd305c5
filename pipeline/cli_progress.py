"""How the CLI shows a batch's progress on stderr while ``run`` or ``watch`` waits for it: a
redrawn bar for a terminal, a plain line every few seconds for a log, or nothing. Runs in the
user's process.

A bar redraws five times a second with carriage returns: in a terminal that is one line that
moves, in a CI log or a file it is thousands of lines. So the default follows stderr: a bar on a
terminal, plain lines otherwise; ``--progress`` chooses explicitly.

Both show the batch's own numbers: elapsed time since the batch started (``watch`` may join a
batch that has run for an hour) and the rate of images processed, never of images reused from
an earlier run or settled as duplicates, so neither starts with an absurd rate.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Literal, Protocol, TextIO

from tqdm import tqdm

from pipeline.results import BatchStatus

ProgressMode = Literal["bar", "plain", "none"]
PROGRESS_MODES: tuple[ProgressMode, ...] = ("bar", "plain", "none")
# A plain line at most this often, and one when the batch ends.
PLAIN_EVERY_S = 5.0


class ProgressView(Protocol):
    def show(self, status: BatchStatus) -> None:
        """The batch as it stands now (called often; each view decides what to write)."""

    def close(self) -> None:
        """The batch ended, or the wait did."""


def default_mode(stream: TextIO) -> ProgressMode:
    return "bar" if stream.isatty() else "plain"


def progress_view(mode: ProgressMode | None, batch_id: str, total: int) -> ProgressView:
    """A view on stderr; ``None`` picks the default for where stderr goes."""
    chosen = mode or default_mode(sys.stderr)
    if chosen == "bar":
        return BarView(batch_id, total)
    if chosen == "plain":
        return PlainView(batch_id, sys.stderr)
    return NoView()


def rate_text(status: BatchStatus) -> str:
    """The rate as "3.1 images/s"; nothing when no image was processed (all reused)."""
    return f"{status.images_per_s:.1f} images/s" if status.processed else ""


class NoView:
    def show(self, status: BatchStatus) -> None:
        pass

    def close(self) -> None:
        pass


class PlainView:
    """One line per ``PLAIN_EVERY_S`` (nothing for a batch that ends sooner) and one at the
    end, with the counts and the rate: a log stays readable and short."""

    def __init__(self, batch_id: str, stream: TextIO) -> None:
        self.batch_id = batch_id
        self.stream = stream
        self._last_line = time.monotonic()
        self._last: BatchStatus | None = None
        self._written: BatchStatus | None = None

    def show(self, status: BatchStatus) -> None:
        self._last = status
        if status.finished or time.monotonic() - self._last_line >= PLAIN_EVERY_S:
            self._write(status)

    def close(self) -> None:
        if self._last is not None and self._written != self._last:
            self._write(self._last)

    def _write(self, status: BatchStatus) -> None:
        if status == self._written:
            return
        done = status.total - status.pending
        parts = [
            f"thumbflow: batch {self.batch_id} {status.state}: {done}/{status.total}",
            f"ok {status.ok} · duplicate {status.duplicate} · failed {status.failed} · "
            f"cancelled {status.cancelled}",
            f"{status.elapsed_s:.0f} s",
        ]
        if rate := rate_text(status):
            parts.append(rate)
        print(", ".join(parts), file=self.stream, flush=True)
        self._written = status
        self._last_line = time.monotonic()


if TYPE_CHECKING:
    _Bar = tqdm[Any]
else:
    _Bar = tqdm


class _BatchBar(_Bar):
    """A tqdm bar whose elapsed time and rate are the batch's, not the bar's: tqdm's own count
    from when the bar appeared and divide everything already done by that."""

    status: BatchStatus | None = None

    @property
    def format_dict(self) -> dict[str, Any]:
        shown = dict(super().format_dict)
        if self.status is not None:
            shown["elapsed"] = self.status.elapsed_s
            # 0 shows as "?": no rate until an image has been processed.
            shown["rate"] = self.status.images_per_s if self.status.processed else 0.0
        return shown


class BarView:
    def __init__(self, batch_id: str, total: int) -> None:
        self._bar = _BatchBar(
            total=total, unit="img", dynamic_ncols=True, desc=f"batch {batch_id}", file=sys.stderr
        )

    def show(self, status: BatchStatus) -> None:
        self._bar.status = status
        self._bar.total = status.total
        self._bar.n = status.total - status.pending
        self._bar.set_postfix(
            ok=status.ok, dup=status.duplicate, failed=status.failed, cancelled=status.cancelled,
            refresh=False,
        )  # fmt: skip
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()
