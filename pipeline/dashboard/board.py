"""The batch board: a scheduler plugin holding each batch's latest counts, shown on the Dask
dashboard at ``/thumbflow/batches`` (and ``/thumbflow/batches.json``). Runs in the scheduler.

Drivers register it (``pipeline.dashboard.feed``) and send it a ``BatchRecord`` as their batch
starts, as results arrive and when it ends. It is idempotent under one name, so every client
of a shared scheduler registers it and the first registration wins; its pages then list the
batches of all of them. Everything runs on the scheduler's event loop, so no lock is needed.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, TypedDict

from distributed.diagnostics.plugin import SchedulerPlugin

from pipeline.dashboard import BATCHES_PAGE
from pipeline.dashboard.page import BatchesJson, BatchesPage

if TYPE_CHECKING:
    from distributed import Scheduler

PLUGIN_NAME = "thumbflow-batches"
HANDLER = "thumbflow_batch_progress"  # the scheduler op a driver's record arrives by
PAGE = BATCHES_PAGE
KEEP_FINISHED = 50  # finished batches still listed; running ones are always listed


class BatchRecord(TypedDict):
    """What a driver sends: its batch's counts so far. ``client`` is the driver's Dask client
    id, which tells the board whether the driver is still connected."""

    batch_id: str
    state: str
    total: int
    ok: int
    duplicate: int
    failed: int
    cancelled: int
    reused: int
    elapsed_s: float
    images_per_s: float
    output: str
    host: str
    client: str


class BoardEntry(BatchRecord):
    """A record as the board keeps it, stamped with the scheduler's clock (so the drivers'
    clocks need not agree with it)."""

    first_seen: float
    updated: float


class BatchBoard(SchedulerPlugin):
    name = PLUGIN_NAME
    idempotent = True

    def __init__(self) -> None:
        # Empty until start(): the instance is pickled by the client that registers it.
        self.entries: dict[str, BoardEntry] = {}
        self._scheduler: Scheduler | None = None

    async def start(self, scheduler: Scheduler) -> None:
        self._scheduler = scheduler
        scheduler.handlers[HANDLER] = self.receive
        application = getattr(scheduler, "http_application", None)
        if application is not None:  # a scheduler started without a dashboard has none
            # Matched under any prefix (`dask scheduler --dashboard-prefix /dask`): the
            # scheduler does not keep its prefix, and the dashboard's own links are relative.
            application.add_handlers(
                r".*$",
                [
                    (rf"/(?:.+/)?{PAGE}", BatchesPage, {"board": self}),
                    (rf"/(?:.+/)?{PAGE}\.json", BatchesJson, {"board": self}),
                ],
            )
            _link_from_the_dashboard_menu(scheduler)

    async def close(self) -> None:
        if self._scheduler is not None:
            self._scheduler.handlers.pop(HANDLER, None)

    def receive(self, record: BatchRecord) -> None:
        """A driver's latest counts (the scheduler op ``HANDLER``)."""
        now = time.time()
        batch_id = str(record["batch_id"])
        known = self.entries.pop(batch_id, None)  # re-inserted last: newest at the end
        first_seen = known["first_seen"] if known is not None else now
        self.entries[batch_id] = BoardEntry(**record, first_seen=first_seen, updated=now)
        self._forget_old_finished()

    def listed(self) -> list[tuple[BoardEntry, bool]]:
        """Each entry, newest first, with whether its driver is still connected."""
        clients = self._scheduler.clients if self._scheduler is not None else {}
        entries = sorted(self.entries.values(), key=lambda entry: -entry["first_seen"])
        return [(entry, entry["client"] in clients) for entry in entries]

    def _forget_old_finished(self) -> None:
        finished = [key for key, entry in self.entries.items() if entry["state"] != "running"]
        for key in finished[: max(0, len(finished) - KEEP_FINISHED)]:  # oldest updates first
            del self.entries[key]


def _link_from_the_dashboard_menu(scheduler: Scheduler) -> None:
    """Add the page to the dashboard's "More..." menu. That menu is built from a list distributed
    computes once per scheduler (and caches): appending to it is not a public API, so any
    change in distributed only costs the link, never the page."""
    with contextlib.suppress(Exception):
        from distributed.dashboard.scheduler import template_variables

        plots: list[dict[str, Any]] = template_variables(scheduler)["plots"]
        if all(plot.get("url") != PAGE for plot in plots):
            plots.append({"url": PAGE, "name": "Thumbflow Batches"})
