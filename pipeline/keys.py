"""Task keys: the one place that knows their shape, ``(f"{step}-{batch_id}", chunk)``.

Used in every process: ``graph`` makes keys, the driver reads which step and chunk a finished
future was, and a worker counts the tasks of one batch it is still running. The step comes first
so the dashboard's task stream and progress bars group tasks under ``hash``, ``validate``,
``resize`` and ``encode``; the batch id makes every key unique to its batch, because Dask hands
back a still-held result for a reused key, and cancelling then resubmitting one key is a known
distributed bug (dask/distributed#8215).
"""

from __future__ import annotations

from typing import Any, NamedTuple, get_args

from pipeline.errors import Step

STEPS: tuple[Step, ...] = get_args(Step)


class TaskKey(NamedTuple):
    step: Step
    batch_id: str
    chunk: int


def make_key(step: Step, batch_id: str, chunk: int) -> tuple[str, int]:
    return (f"{step}-{batch_id}", chunk)


def parse_key(key: Any) -> TaskKey | None:
    """The parts of one of our keys; None for any other key (another library's, a driver's)."""
    if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str)):
        return None
    step, _, batch_id = key[0].partition("-")
    if step not in STEPS or not batch_id or not isinstance(key[1], int):
        return None
    return TaskKey(step, batch_id, key[1])


def belongs_to(key: Any, batch_id: str) -> bool:
    parsed = parse_key(key)
    return parsed is not None and parsed.batch_id == batch_id
