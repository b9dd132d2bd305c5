"""A live progress bar for a batch, as plain HTML updated in place (no ipywidgets). Runs in the
notebook's kernel; unrelated to ``pipeline.progress``, which records progress in Redis."""

from __future__ import annotations

import html
import time
from typing import Protocol

from pipeline.errors import ConfigError
from pipeline.notebook.html import OUTCOME_COLOURS, HtmlFragment, display
from pipeline.results import BatchStatus


class StatusSource(Protocol):
    """Anything that reports a batch's status: a ``BatchHandle``, or your own Redis reader."""

    def status(self) -> BatchStatus: ...


def show_progress(handle: StatusSource, interval: float = 0.25) -> BatchStatus:
    """Show a batch's progress as a bar updated in place until the batch ends; return the
    final status. ``handle`` is a ``BatchHandle``, or anything with a ``status()`` method.

    The bar is one display updated by id (``display(..., display_id=True)``), so a notebook
    run headless keeps the final state in its saved output. Interrupting the cell stops the
    display, not the batch: ``handle.cancel()`` does that.
    """
    if interval <= 0:
        raise ConfigError(f"interval must be more than 0 s, got {interval}")
    status = handle.status()
    shown = display(progress_view(status), display_id=True)
    try:
        while not status.finished:
            time.sleep(interval)
            status = handle.status()
            if shown is not None:
                shown.update(progress_view(status))
    except KeyboardInterrupt:
        if shown is not None:
            note = "display stopped; the batch is still running (handle.cancel() stops it)"
            shown.update(progress_view(handle.status(), note=note))
        raise
    if shown is None:
        # Outside IPython, display() printed the first state and returned no handle: print
        # the last one too rather than leave the reader with a stale line.
        display(progress_view(status))
    return status


def progress_view(status: BatchStatus, note: str = "") -> HtmlFragment:
    """One status as a stacked bar (ok, duplicate, failed, cancelled, pending) and a line of
    counts, images/s and elapsed time: what ``show_progress`` draws, for any status, such as
    one read from Redis (``progress_view(pipeline.status(batch_id, redis_url=url))``)."""
    counts = {
        "ok": status.ok,
        "duplicate": status.duplicate,
        "failed": status.failed,
        "cancelled": status.cancelled,
        "pending": status.pending,
    }
    segments = "".join(
        f'<div title="{outcome} {count}" style="width:{100 * count / status.total:.3f}%;'
        f'background:{OUTCOME_COLOURS[outcome]}"></div>'
        for outcome, count in counts.items()
        if count and status.total
    )
    legend = " · ".join(
        f'<span style="color:{OUTCOME_COLOURS[outcome]}">■</span> {outcome} {count}'
        for outcome, count in counts.items()
    )
    rate = f"{status.images_per_s:.1f} images/s · {status.elapsed_s:.1f} s"
    text = (
        f"{status.batch_id} {status.state}: "
        + ", ".join(f"{count} {outcome}" for outcome, count in counts.items())
        + f" of {status.total} · {rate}"
        + (f" ({note})" if note else "")
    )
    markup = (
        f'<div class="thumbflow-progress" data-batch="{html.escape(status.batch_id)}" '
        f'data-state="{status.state}" style="font-family:sans-serif;font-size:13px;'
        'max-width:720px;margin:4px 0">'
        '<div style="display:flex;height:14px;border-radius:3px;overflow:hidden;'
        f'background:{OUTCOME_COLOURS["pending"]}">{segments}</div>'
        f'<div style="margin-top:4px"><b>{status.state}</b> · {legend} · of {status.total} · '
        f"{rate} · <code>{html.escape(status.batch_id)}</code>"
        + (f"<br><i>{html.escape(note)}</i>" if note else "")
        + "</div></div>"
    )
    return HtmlFragment(markup, text)
