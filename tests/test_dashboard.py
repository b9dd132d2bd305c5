"""What the Dask dashboard shows for a batch: a span with per-step activities, the batch board
page (fetched over HTTP from the dashboard link), a self-contained performance report."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path
from typing import Any

from distributed import Client

import pipeline
from pipeline.dashboard.board import HANDLER, KEEP_FINISHED, BatchBoard, BatchRecord
from pipeline.samples import SampleSet
from tests.helpers import wait_until


def spans_on_scheduler(dask_scheduler: Any) -> dict[str, set[str]]:
    """Span name → the activities measured inside it (what the Fine Performance Metrics page
    plots), read from the scheduler's spans extension."""
    found: dict[str, set[str]] = {}
    for span in dask_scheduler.extensions["spans"].spans.values():
        activities = {key[2] for key in span.cumulative_worker_metrics if key[0] == "execute"}
        found.setdefault(span.name[-1], set()).update(activities)
    return found


def test_a_batch_is_one_span_with_each_step_as_an_activity(
    samples: SampleSet, cluster_client: Client, tmp_path: Path
) -> None:
    report = pipeline.run(samples.images[:3], tmp_path, client=cluster_client)
    name = f"thumbflow-{report.status.batch_id}"
    deadline = time.monotonic() + 20  # workers send their metrics with the next heartbeat
    while time.monotonic() < deadline:
        activities = cluster_client.run_on_scheduler(spans_on_scheduler).get(name, set())
        if {"hash", "validate", "decode", "resize", "encode", "write"} <= activities:
            break
        time.sleep(0.25)
    assert {"hash", "validate", "decode", "resize", "encode", "write"} <= activities


def fetch(client: Client, path: str) -> str:
    """A page of the scheduler's dashboard, over HTTP, from the client's dashboard link."""
    base = client.dashboard_link.rsplit("/", 1)[0]
    with urllib.request.urlopen(f"{base}/{path}", timeout=10) as response:
        assert response.status == 200
        return str(response.read().decode())


def board(client: Client) -> dict[str, dict[str, Any]]:
    """The batch board's JSON, by batch id."""
    return {
        row["batch_id"]: row
        for row in json.loads(fetch(client, "thumbflow/batches.json"))["batches"]
    }


def page_row(page: str, batch_id: str) -> dict[str, str]:
    """One batch's row of the HTML page: its ``data-state`` and its cells' text by column."""
    match = re.search(
        rf'<tr class="batch" data-batch="{batch_id}" data-state="(\w+)">(.*?)</tr>', page
    )
    assert match is not None, f"{batch_id} not on the page"
    headings = re.findall(r"<th[^>]*>([^<]+)</th>", page)
    cells = [re.sub(r"<[^>]+>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", match[2])]
    return {"data-state": match[1], **dict(zip(headings, cells, strict=True))}


def test_the_batch_board_shows_whole_batches_from_every_client(
    samples: SampleSet, many: Path, cluster_client: Client, tmp_path: Path
) -> None:
    """Three batches from two clients of one scheduler: one watched while it runs and then
    cancelled, one with failures and a duplicate (and a performance report), one that reuses
    the outputs of the one before. The board lists each with the counts its driver has."""
    # -- while a batch runs, the board has its whole-batch counts, not the window in flight
    running = pipeline.submit([many], tmp_path / "many", client=cluster_client)
    assert board(cluster_client)[running.batch_id]["total"] == 40  # listed once submit returns
    seen: dict[str, Any] = {}

    def partly_done() -> bool:
        seen.update(board(cluster_client).get(running.batch_id, {}))
        return seen.get("state") == "running" and 0 < seen["done"] < seen["total"]

    wait_until(partly_done, timeout=60)
    cancelled = running.cancel()
    assert cancelled.state == "cancelled"

    # -- a batch from a second client of the same scheduler, with a report of it
    report_path = tmp_path / "report.html"
    with Client(cluster_client.scheduler.address, set_as_default=False) as other:
        second = pipeline.run(
            [samples.folder], tmp_path / "out", client=other, performance_report=str(report_path)
        )
    # -- a rerun into the same output reuses every processed image
    third = pipeline.run([samples.folder], tmp_path / "out", client=cluster_client)

    shown = board(cluster_client)
    for status, reused in [(cancelled, 0), (second.status, 0), (third.status, third.status.ok)]:
        row = shown[status.batch_id]
        counts = {
            name: row[name] for name in ("state", "total", "ok", "duplicate", "failed", "cancelled")
        }
        assert counts == {
            "state": status.state, "total": status.total, "ok": status.ok,
            "duplicate": status.duplicate, "failed": status.failed, "cancelled": status.cancelled,
        }  # fmt: skip
        assert row["reused"] == reused
        assert row["done"] == status.total  # every image has its outcome once a batch ends
        assert row["images_per_s"] > 0
    assert (second.status.failed, second.status.duplicate) == (2, 1)
    assert third.status.ok > 0
    assert shown[second.status.batch_id]["client"] != shown[third.status.batch_id]["client"]

    page = fetch(cluster_client, "thumbflow/batches")
    row = page_row(page, second.status.batch_id)
    assert (row["data-state"], row["state"]) == ("done", "done")
    assert row["done / total"] == f"{second.status.total} / {second.status.total}"
    assert (row["ok"], row["duplicate"], row["failed"]) == (str(second.status.ok), "1", "2")
    assert page_row(page, third.status.batch_id)["reused"] == str(third.status.ok)
    assert page_row(page, cancelled.batch_id)["state"] == "cancelled"
    # the dashboard's own pages link to it (the "More..." menu)
    assert 'href="thumbflow/batches"' in fetch(cluster_client, "status")

    # -- the report is self-contained and says which batch it is
    text = report_path.read_text()
    assert "Dask Performance Report" in text
    assert "Task Stream" in text
    assert re.findall(r"<script[^>]*\bsrc=[\"']?https?:", text) == []  # BokehJS is inline
    assert "Bokeh" in text
    calling_code = text[text.index("Calling Code") :][:2000]
    assert f"thumbflow batch {second.status.batch_id}" in calling_code
    assert "contextlib" not in calling_code


def send_record(client: Client, batch_id: str, state: str, driver: str) -> None:
    """A record as a driver sends it, through the scheduler op drivers use."""
    record = BatchRecord(
        batch_id=batch_id, state=state, total=4, ok=1, duplicate=0, failed=1, cancelled=0,
        reused=0, elapsed_s=2.0, images_per_s=1.0, output="/out/<b>", host="h", client=driver,
    )  # fmt: skip
    client.sync(getattr(client.scheduler, HANDLER), record=record)


def test_the_board_marks_a_silent_driver_and_keeps_only_the_latest_finished(
    cluster_client: Client,
) -> None:
    cluster_client.register_plugin(BatchBoard())
    # a running batch whose driver's client is not connected (a notebook kernel that died)
    send_record(cluster_client, "orphan-<i>", "running", driver="Client-gone")
    send_record(cluster_client, "alive", "running", driver=str(cluster_client.id))
    for number in range(KEEP_FINISHED + 5):
        send_record(cluster_client, f"finished-{number}", "done", driver="Client-gone")

    shown = board(cluster_client)
    assert shown["orphan-<i>"]["driver_connected"] is False
    assert shown["alive"]["driver_connected"] is True
    finished = {batch_id for batch_id, row in shown.items() if row["state"] != "running"}
    assert finished == {f"finished-{number}" for number in range(5, KEEP_FINISHED + 5)}

    page = fetch(cluster_client, "thumbflow/batches")
    orphan = page_row(page, "orphan-&lt;i&gt;")
    assert (orphan["data-state"], orphan["state"]) == ("running", "running · driver disconnected")
    assert page_row(page, "alive")["state"] == "running"
    assert "<i>" not in page  # what drivers send is escaped
    assert "/out/<b>" not in page
    assert "/out/&lt;b&gt;" in page
