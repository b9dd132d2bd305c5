"""The JSON the CLI prints: ``run --json``, ``status --json`` and ``list --json`` describe a
batch with one shape, ``BatchJson``, defined here and only here. Runs in the user's process.

Numbers are JSON numbers, nested values are JSON objects, flags are booleans, and a value
that does not exist (no rate when nothing was processed, no finish time while a batch runs) is
``null``. The progress store keeps every field as a string; this module is where they become
typed again, so a script reading the output never has to parse JSON inside JSON.

Keys marked "store only" come from the progress store's record of a batch (``status`` and
``list``); ``run --json`` describes the batch it ran and leaves them out.
"""

from __future__ import annotations

import json
from typing import Any, NotRequired, TypedDict

from pipeline.progress.store import StoredBatch
from pipeline.redaction import redact_location
from pipeline.results import BatchReport, BatchStatus, StepTiming


class StepTimingJson(TypedDict):
    count: int
    p50_ms: float
    p95_ms: float
    total_s: float


class BatchJson(TypedDict):
    batch_id: str
    state: str
    total: int
    ok: int
    reused: int  # of ``ok``: derivatives an earlier run had made
    duplicate: int
    failed: int
    cancelled: int
    pending: int
    processed: int  # decoded or tried: not reused, not duplicates, not cancelled
    elapsed_s: float
    images_per_s: float | None  # processed / elapsed; null when nothing was processed
    output: str | None  # the output root (credentials redacted)
    manifest: str | None
    failures_by_code: dict[str, int]
    timings: dict[str, StepTimingJson]
    error: str | None  # why the batch stopped, if it failed
    # run only (the report knows them; the store does not):
    duplicates_of_failed: NotRequired[int]  # of ``failed``: copies of an input that failed
    images_with_warnings: NotRequired[int]  # rows whose ``warnings`` are not empty
    # store only:
    created_at: NotRequired[float | None]  # unix seconds
    started_at: NotRequired[float | None]
    finished_at: NotRequired[float | None]
    heartbeat_at: NotRequired[float | None]
    cancel_requested: NotRequired[bool]
    stale: NotRequired[bool]  # not ended, and its driver has not been heard from: it is gone
    host: NotRequired[str | None]  # where its driver runs
    pid: NotRequired[int | None]


def _counts(status: BatchStatus) -> BatchJson:
    """The keys every command has, with the locations and details left empty."""
    return {
        "batch_id": status.batch_id,
        "state": status.state,
        "total": status.total,
        "ok": status.ok,
        "reused": status.reused,
        "duplicate": status.duplicate,
        "failed": status.failed,
        "cancelled": status.cancelled,
        "pending": status.pending,
        "processed": status.processed,
        "elapsed_s": round(status.elapsed_s, 3),
        "images_per_s": round(status.images_per_s, 3) if status.processed else None,
        "output": None,
        "manifest": None,
        "failures_by_code": {},
        "timings": {},
        "error": None,
    }


def _timing(timing: StepTiming) -> StepTimingJson:
    return {
        "count": timing.count,
        "p50_ms": round(timing.p50_ms, 3),
        "p95_ms": round(timing.p95_ms, 3),
        "total_s": round(timing.total_s, 3),
    }


def from_report(report: BatchReport) -> BatchJson:
    """``run --json``: the batch this process ran, from its report."""
    shape = _counts(report.status)
    shape["output"] = redact_location(report.output)
    shape["manifest"] = redact_location(report.manifest)
    shape["failures_by_code"] = dict(sorted(report.failures_by_code.items()))
    shape["timings"] = {step: _timing(timing) for step, timing in report.timings.items()}
    shape["duplicates_of_failed"] = report.duplicates_of_failed
    shape["images_with_warnings"] = report.images_with_warnings
    return shape


def from_store(stored: StoredBatch) -> BatchJson:
    """``status --json`` and ``list --json``: a batch as the progress store records it."""
    fields = stored.fields
    shape = _counts(stored.status())
    shape["output"] = _location(fields.get("output"))
    shape["manifest"] = _location(fields.get("manifest"))
    shape["failures_by_code"] = {
        str(code): int(count) for code, count in _object(fields.get("failures_by_code")).items()
    }
    shape["timings"] = {
        str(step): _timing(StepTiming.from_json(timing))
        for step, timing in _object(fields.get("timings")).items()
    }
    shape["error"] = fields.get("error") or None
    shape["created_at"] = _number(fields.get("created_at"))
    shape["started_at"] = _number(fields.get("started_at"))
    shape["finished_at"] = _number(fields.get("finished_at"))
    shape["heartbeat_at"] = _number(fields.get("heartbeat_at"))
    shape["cancel_requested"] = fields.get("cancel_requested") == "1"
    shape["stale"] = stored.stale
    shape["host"] = fields.get("host") or None
    pid = _number(fields.get("pid"))
    shape["pid"] = int(pid) if pid is not None else None
    return shape


def dumps(shape: BatchJson | list[BatchJson]) -> str:
    return json.dumps(shape, ensure_ascii=False)


def _number(text: str | None) -> float | None:
    return float(text) if text not in (None, "") else None


def _location(text: str | None) -> str | None:
    return redact_location(text) if text else None


def _object(text: str | None) -> dict[str, Any]:
    """A JSON object the driver stored as a string ({} when absent)."""
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}
