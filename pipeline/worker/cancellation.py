"""Lets a running task notice that its batch was cancelled. Runs on the workers.

``client.cancel`` drops queued tasks at once but cannot stop one that is running: it runs to its
end and its result is thrown away (docs/design.md). For us "its end" could mean dozens of images
encoded and written after the user pressed cancel. The worker does know, though: when the
scheduler releases a task it is executing, the worker marks it ``cancelled`` while it runs on.
Reading that mark is a local dictionary lookup, cheap enough to do before every file we write.
``running_tasks`` counts, on one worker, the tasks of a batch still running: the driver waits
for zero everywhere before a cancelled batch reports that it has settled.
"""

from __future__ import annotations

from collections.abc import Callable

from distributed import Worker, get_worker

from pipeline.keys import belongs_to

# A task that is released while it runs goes on running in the "cancelled" state until it ends.
_RUNNING_STATES = frozenset({"executing", "long-running", "cancelled", "resumed"})


class TaskCancelled(Exception):
    """The batch was cancelled while this task ran: stop before doing (or writing) more."""


def current_task_cancelled() -> bool:
    """True when the Dask task running this code has been cancelled; False outside Dask (tests,
    a plain process pool), where nobody can cancel it."""
    try:
        worker = get_worker()
    except ValueError:
        return False
    key = worker.get_current_task()
    task = worker.state.tasks.get(key)
    return task is None or task.state == "cancelled"


def cancel_check() -> Callable[[], bool]:
    """``current_task_cancelled`` for threads the task starts (its URL fetches): Dask knows a
    task by the thread running it, so the task's key is read here, in the task's thread."""
    try:
        worker = get_worker()
    except ValueError:
        return lambda: False
    key = worker.get_current_task()

    def cancelled() -> bool:
        task = worker.state.tasks.get(key)
        return task is None or task.state == "cancelled"

    return cancelled


def running_tasks(batch_id: str, dask_worker: Worker) -> int:
    """How many tasks of the batch ``batch_id`` this worker is still running, cancelled ones
    included. Called through ``client.run`` (which passes ``dask_worker``), so it reads the
    worker's state on its own event loop."""
    return sum(
        1
        for key, task in dask_worker.state.tasks.items()
        if task.state in _RUNNING_STATES and belongs_to(key, batch_id)
    )
