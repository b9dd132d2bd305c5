"""The values users see: one input's outcome, a batch's live status, its final report.

Runs everywhere: workers build ``ImageResult`` rows, the driver counts them into a
``BatchStatus`` and a ``BatchReport``, and readers in any process rebuild those from JSON (the
manifest, the summary file beside it, the progress store). Every value here is a frozen
dataclass of plain fields, so JSON is ``dataclasses.asdict`` one way and the constructor the
other; only ``BatchStatus`` adds derived numbers (``pending``, ``images_per_s``) for readers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, TypeVar, cast, get_args

from pipeline.errors import Failure

Status = Literal["ok", "duplicate", "duplicate_of_failed", "failed", "cancelled"]
# What the counts add up (ok + duplicate + failed + cancelled = total): a copy of a failed input
# is a failed input too (no derivatives), with its own status in its manifest row.
Tally = Literal["ok", "duplicate", "failed", "cancelled"]
BatchState = Literal["queued", "running", "done", "cancelled", "failed"]
FINAL_STATES: frozenset[BatchState] = frozenset({"done", "cancelled", "failed"})

_Plain = TypeVar("_Plain")


def counted_as(status: Status) -> Tally:
    """The count an outcome adds to."""
    return "failed" if status == "duplicate_of_failed" else status


def _from_fields(cls: type[_Plain], row: dict[str, Any]) -> _Plain:
    """Build a flat dataclass from a JSON object, ignoring keys it does not have (derived
    numbers such as ``pending``, or fields a newer version added)."""
    names = {f.name for f in fields(cast(Any, cls))}
    return cls(**{name: value for name, value in row.items() if name in names})


@dataclass(frozen=True)
class OutputFile:
    """One derivative; ``path`` is relative to the output root."""

    path: str
    size: str
    format: str
    width: int
    height: int
    bytes: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> OutputFile:
        return _from_fields(cls, row)


@dataclass(frozen=True)
class ImageResult:
    """The outcome of one input, as one manifest row. ``warnings``: what Pillow warned about
    while reading this file (deduplicated, at most ``MAX_WARNINGS``), kept here instead of
    printed by the worker."""

    index: int
    source: str
    status: Status
    sha256: str | None = None
    outputs: tuple[OutputFile, ...] = ()
    failure: Failure | None = None
    duplicate_of: str | None = None
    reused: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # A URL list's row: the columns the user asked to carry (``keep_columns``); only then
    # in the manifest row.
    columns: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        if self.columns is None:
            del row["columns"]
        row["warnings"] = list(self.warnings)
        row["timings_ms"] = {step: round(ms, 3) for step, ms in self.timings_ms.items()}
        return row


@dataclass(frozen=True)
class StepTiming:
    """One step's time per image over a batch."""

    count: int
    p50_ms: float
    p95_ms: float
    total_s: float

    def to_json(self) -> dict[str, float]:
        return {name: round(value, 3) for name, value in asdict(self).items()}

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> StepTiming:
        return _from_fields(cls, row)


@dataclass(frozen=True)
class BatchStatus:
    """Counts so far; ``pending`` is what no count holds yet. ``reused`` is the part of ``ok``
    whose derivatives an earlier run had made: nothing was decoded for them."""

    batch_id: str
    state: BatchState
    total: int
    ok: int
    duplicate: int
    failed: int
    cancelled: int
    elapsed_s: float
    reused: int = 0

    def __post_init__(self) -> None:
        if self.state not in get_args(BatchState):
            raise ValueError(f"batch {self.batch_id}: unknown state {self.state!r}")

    @property
    def pending(self) -> int:
        return self.total - self.ok - self.duplicate - self.failed - self.cancelled

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES

    @property
    def processed(self) -> int:
        """Inputs this batch decoded, or tried to: not reused, not duplicates, not cancelled.
        The rate counts only these, so a rerun that reused everything reports no rate, rather
        than the speed of checking that the derivatives are there."""
        return self.ok - self.reused + self.failed

    @property
    def images_per_s(self) -> float:
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> BatchStatus:
        return _from_fields(cls, row)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "pending": self.pending,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.images_per_s, 3),
        }


@dataclass(frozen=True)
class BatchReport:
    """What a finished batch did and where to find it. ``duplicates_of_failed`` are among
    ``status.failed``; ``images_with_warnings`` counts rows whose ``warnings`` are not empty."""

    status: BatchStatus
    manifest: str
    output: str
    failures_by_code: dict[str, int] = field(default_factory=dict)
    timings: dict[str, StepTiming] = field(default_factory=dict)
    duplicates_of_failed: int = 0
    images_with_warnings: int = 0

    @classmethod
    def from_json(cls, summary: dict[str, Any]) -> BatchReport:
        """Read back ``to_json`` (the summary file beside a manifest)."""
        return cls(
            status=BatchStatus.from_json(summary),
            manifest=summary["manifest"],
            output=summary["output"],
            failures_by_code=dict(summary.get("failures_by_code", {})),
            timings={
                step: _from_fields(StepTiming, timing)
                for step, timing in summary.get("timings", {}).items()
            },
            duplicates_of_failed=int(summary.get("duplicates_of_failed", 0)),
            images_with_warnings=int(summary.get("images_with_warnings", 0)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.status.to_json(),
            "manifest": self.manifest,
            "output": self.output,
            "failures_by_code": self.failures_by_code,
            "timings": {step: timing.to_json() for step, timing in self.timings.items()},
            "duplicates_of_failed": self.duplicates_of_failed,
            "images_with_warnings": self.images_with_warnings,
        }
