"""Per-step timings of a batch, aggregated as count, median, 95th percentile and total.

Runs in the driver (the submitting process, or a worker for a detached batch).
"""

from __future__ import annotations

from array import array

from pipeline.results import StepTiming


def _percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    rank = max(0, min(len(ordered) - 1, round(fraction * (len(ordered) - 1))))
    return ordered[rank]


class TimingCollector:
    """Keeps every sample in a compact array (8 bytes each) until the batch is summarised."""

    def __init__(self) -> None:
        self._samples: dict[str, array[float]] = {}

    def add(self, timings_ms: dict[str, float]) -> None:
        for step, milliseconds in timings_ms.items():
            self._samples.setdefault(step, array("d")).append(milliseconds)

    def summary(self) -> dict[str, StepTiming]:
        summary = {}
        for step, samples in self._samples.items():
            ordered = sorted(samples)
            summary[step] = StepTiming(
                count=len(ordered),
                p50_ms=_percentile(ordered, 0.5),
                p95_ms=_percentile(ordered, 0.95),
                total_s=sum(ordered) / 1000,
            )
        return summary
