"""What thumbflow adds to Dask's dashboard and performance report.

- ``board``: a scheduler plugin that keeps each batch's counts as its driver sends them, and
  serves them on the scheduler's dashboard as ``/thumbflow/batches`` (HTML, refreshing) and
  ``/thumbflow/batches.json``. Runs in the scheduler.
- ``page``: the HTML of that page. Runs in the scheduler.
- ``feed``: the driver's side: registers the plugin and sends the counts. Runs in the driver's
  process (the submitting process, or a worker for a detached batch).
- ``report``: ``--report``'s performance report, self-contained and naming the batch. Runs in
  the driver's process.

Why the driver sends the counts rather than the scheduler deriving them from task states: the
scheduler sees chunks, not images, and only the chunks of the window in flight; the total, the
outcome of each image (ok, duplicate, failed, reused) and the cancelled ones exist only in the
driver's ledger. Every driver talks to the scheduler anyway, so batches from several clients of
a shared scheduler, detached batches and a LocalCluster's batches all land on the same board.
"""

BATCHES_PAGE = "thumbflow/batches"  # below the dashboard's root, whatever its prefix


def batches_page_link(dashboard_link: str | None) -> str | None:
    """The batch page beside a dashboard link (``…/status`` → ``…/thumbflow/batches``)."""
    if dashboard_link is None or not dashboard_link.endswith("/status"):
        return None
    return dashboard_link.removesuffix("status") + BATCHES_PAGE
