"""What a batch reports about itself: live counts, and the summary once it has ended."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

from pipeline.metrics import StepTiming

BatchState = Literal["queued", "running", "done", "cancelled", "failed"]


@dataclass(frozen=True)
class BatchStatus:
    """Counts so far. ``ok + duplicate + failed + cancelled + pending == total`` at every moment."""

    batch_id: str
    state: BatchState
    total: int
    ok: int
    duplicate: int
    failed: int
    cancelled: int
    elapsed_s: float

    @property
    def pending(self) -> int:
        return self.total - self.ok - self.duplicate - self.failed - self.cancelled

    @property
    def finished(self) -> bool:
        return self.state in ("done", "cancelled", "failed")

    @property
    def images_per_s(self) -> float:
        handled = self.ok + self.duplicate + self.failed
        return handled / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> BatchStatus:
        state = row["state"] if row["state"] in get_args(BatchState) else "running"
        return cls(
            str(row["batch_id"]),
            cast(BatchState, state),
            int(row["total"]),
            int(row["ok"]),
            int(row["duplicate"]),
            int(row["failed"]),
            int(row["cancelled"]),
            float(row["elapsed_s"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "state": self.state,
            "total": self.total,
            "ok": self.ok,
            "duplicate": self.duplicate,
            "failed": self.failed,
            "cancelled": self.cancelled,
            "pending": self.pending,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.images_per_s, 3),
        }


@dataclass(frozen=True)
class BatchReport:
    """What a finished batch did and where to find it."""

    status: BatchStatus
    manifest: str
    output: str
    failures_by_code: dict[str, int] = field(default_factory=dict)
    timings: dict[str, StepTiming] = field(default_factory=dict)

    @classmethod
    def from_json(cls, summary: dict[str, Any]) -> BatchReport:
        """Read back ``to_json`` (the summary file beside a manifest)."""
        return cls(
            status=BatchStatus.from_json(summary),
            manifest=summary["manifest"],
            output=summary["output"],
            failures_by_code=dict(summary.get("failures_by_code", {})),
            timings={
                step: StepTiming(
                    count=int(t["count"]),
                    p50_ms=float(t["p50_ms"]),
                    p95_ms=float(t["p95_ms"]),
                    total_s=float(t["total_s"]),
                )
                for step, t in summary.get("timings", {}).items()
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.status.to_json(),
            "manifest": self.manifest,
            "output": self.output,
            "failures_by_code": self.failures_by_code,
            "timings": {step: timing.to_json() for step, timing in self.timings.items()},
        }
