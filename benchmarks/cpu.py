"""CPU seconds spent by a set of processes over a timed window.

On a shared, noisy machine wall time swings with whatever else runs; the CPU time the
implementation's own processes used swings far less, and it shows overhead directly (a Dask
scheduler's bookkeeping is CPU that a process pool does not spend).
"""

from __future__ import annotations

import os

import psutil


def _cpu_of(pids: list[int]) -> dict[int, float]:
    spent = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        spent[pid] = times.user + times.system
    return spent


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy, over all cores."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class CpuMeter:
    """``start()`` then ``stop()``: user + system seconds of this process and ``pids``; and
    ``others_s``, what every other process on the machine used meanwhile (the noise)."""

    def __init__(self, pids: list[int]) -> None:
        # Deduplicated: a LocalCluster's nannies live in this process, the workers' parent.
        self.pids = sorted({os.getpid(), *pids})
        self._before: dict[int, float] = {}
        self._machine_before = 0.0
        self.others_s = 0.0

    def start(self) -> None:
        self._before = _cpu_of(self.pids)
        self._machine_before = _machine_busy()

    def stop(self) -> float:
        machine = _machine_busy() - self._machine_before
        after = _cpu_of(self.pids)
        ours = sum(after[pid] - self._before.get(pid, 0.0) for pid in after)
        self.others_s = max(0.0, machine - ours)
        return ours
