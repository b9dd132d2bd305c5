"""The driver's side of the batch board: registers ``BatchBoard`` on the scheduler and sends it
the batch's counts. Runs in the driver's process (the submitting one, or a worker for a detached
batch).

The board is something to look at, never something a batch depends on: a send that fails
(a scheduler gone, which the batch itself reports) turns the feed off for the rest of the batch
and is logged at debug level only.
"""

from __future__ import annotations

import logging
import socket
import time

from distributed import Client

from pipeline.dashboard.board import HANDLER, BatchBoard, BatchRecord
from pipeline.redaction import redact_location
from pipeline.results import BatchStatus

logger = logging.getLogger(__name__)

# At most this often while results arrive (one round trip to the scheduler each); the start and
# the end of a batch are always sent.
SEND_INTERVAL_S = 0.5
# A scheduler that accepts the connection but does not answer must not hold the batch up.
SEND_TIMEOUT_S = 5.0


class DashboardFeed:
    def __init__(self, client: Client, batch_id: str, output: str) -> None:
        self.client = client
        self.batch_id = batch_id
        self.output = redact_location(output)
        self._host = socket.gethostname()
        self._registered = False
        self._off = False
        self._last_sent = -SEND_INTERVAL_S

    def send(self, status: BatchStatus, *, now: bool = False) -> None:
        """Send ``status``: at once with ``now``, else if the last send is old enough."""
        if self._off or self.client.status != "running":  # closed, or reconnecting
            return
        clock = time.monotonic()
        if not now and clock - self._last_sent < SEND_INTERVAL_S:
            return
        self._last_sent = clock
        record = BatchRecord(
            batch_id=self.batch_id,
            state=status.state,
            total=status.total,
            ok=status.ok,
            duplicate=status.duplicate,
            failed=status.failed,
            cancelled=status.cancelled,
            reused=status.reused,
            elapsed_s=round(status.elapsed_s, 3),
            images_per_s=round(status.images_per_s, 3),
            output=self.output,
            host=self._host,
            client=str(self.client.id),
        )
        try:
            if not self._registered:
                # Idempotent under its name: the first client to register it wins, later
                # registrations (every batch, every client) leave it as it is.
                self.client.register_plugin(BatchBoard())
                self._registered = True
            self.client.sync(
                getattr(self.client.scheduler, HANDLER),
                record=record,
                callback_timeout=SEND_TIMEOUT_S,
            )
        except Exception as error:
            self._off = True
            logger.debug("batch %s: the dashboard's batch page is not updated: %s",
                         self.batch_id, error)  # fmt: skip
