"""What the Dask dashboard shows for a batch: a span with per-step activities, a report."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from distributed import Client

import pipeline
from pipeline.samples import SampleSet


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


def test_performance_report_is_saved(
    samples: SampleSet, cluster_client: Client, tmp_path: Path
) -> None:
    target = tmp_path / "report.html"
    pipeline.run(
        samples.images[:2], tmp_path / "out", client=cluster_client, performance_report=str(target)
    )
    text = target.read_text()
    assert "Dask Performance Report" in text
    assert "Task Stream" in text
