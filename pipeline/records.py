"""The values that describe one input's outcome: what the graph returns and the manifest holds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.errors import Failure

Status = Literal["ok", "duplicate", "failed", "cancelled"]
STATUSES: tuple[Status, ...] = ("ok", "duplicate", "failed", "cancelled")


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
        return {
            "path": self.path,
            "size": self.size,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "bytes": self.bytes,
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> OutputFile:
        return cls(
            path=row["path"],
            size=row["size"],
            format=row["format"],
            width=int(row["width"]),
            height=int(row["height"]),
            bytes=int(row["bytes"]),
        )


@dataclass(frozen=True)
class ImageResult:
    """The outcome of one input, as one manifest row."""

    index: int
    source: str
    status: Status
    sha256: str | None = None
    outputs: tuple[OutputFile, ...] = ()
    failure: Failure | None = None
    duplicate_of: str | None = None
    reused: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "source": self.source,
            "sha256": self.sha256,
            "status": self.status,
            "outputs": [output.to_json() for output in self.outputs],
            "failure": self.failure.to_json() if self.failure else None,
            "duplicate_of": self.duplicate_of,
            "reused": self.reused,
            "timings_ms": {step: round(ms, 3) for step, ms in self.timings_ms.items()},
        }
