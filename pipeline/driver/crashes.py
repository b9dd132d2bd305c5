"""Chunks whose task raised instead of returning values. Runs in the driver.

Per-image problems never raise (they are ``Failure`` values), so a task that raises is one of
two things. If its worker kept dying (a memory bomb past the limits, a crash in a decoder), Dask
gives up with ``KilledWorker`` and blames every image of the chunk, and of other chunks queued on
that worker: the suspects are retried one at a time, alone on the cluster, so an innocent simply
succeeds and only the culprit fails, as ``worker_died``. Anything else is a bug in thumbflow:
the chunk's images fail as ``internal_error`` and the batch goes on.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from distributed import KilledWorker

from pipeline.errors import Failure, Step


class Quarantine:
    """Images to retry alone, each at most once."""

    def __init__(self) -> None:
        self._waiting: deque[int] = deque()
        self._seen: set[int] = set()

    def admit(self, members: Sequence[int], error: BaseException | None) -> list[int]:
        """The members of a crashed chunk that are not retried (and so fail now): all of them
        unless the crash was a dying worker and they have not been retried alone already."""
        if not isinstance(error, KilledWorker):
            return list(members)
        suspects = [index for index in members if index not in self._seen]
        self._waiting.extend(suspects)
        self._seen.update(suspects)
        return [index for index in members if index not in suspects]

    def next_alone(self) -> int | None:
        return self._waiting.popleft() if self._waiting else None


def crash_failure(source: str, step: Step, error: BaseException | None) -> Failure:
    """What the manifest says about an image whose task crashed and will not be retried."""
    if isinstance(error, KilledWorker):
        return Failure(
            step,
            "worker_died",
            f"{source}: processing it killed its worker every time, even alone on the cluster "
            "(out of memory, or a crash in a decoder)",
        )
    reason = f"{type(error).__name__}: {error}"
    return Failure(
        step, "internal_error", f"{source}: the {step} task for this image failed ({reason})"
    )
