"""Lets a running task notice that its batch was cancelled.

``client.cancel`` drops queued tasks at once but cannot stop one that is running: it runs to its
end and its result is thrown away (DESIGN.md). For us "its end" could mean dozens of images
encoded and written after the user pressed cancel. The worker does know, though: when the
scheduler releases a task it is executing, the worker marks it ``cancelled`` while it runs on.
Reading that mark is a local dictionary lookup, cheap enough to do before every file we write.
"""

from __future__ import annotations

from distributed import get_worker


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
