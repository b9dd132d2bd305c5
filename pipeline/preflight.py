"""Checks before a batch touches a cluster it does not own.

On a shared cluster an unimportable task can take every worker down: the scheduler unpickles the
graph, so it needs ``pipeline``; a worker that cannot unpickle a task shuts down, and the next
worker gets the task (docs/design.md). So before submitting anything we ask the scheduler and every
worker which ``pipeline`` they can import, using only the builtin ``eval`` (pickled by reference,
like any builtin) so the question itself cannot fail on a machine without thumbflow. Local paths
are checked too: a path the client can see may not exist on the workers' machines. So are URLs:
a worker may lack the store's package, its network route or its credentials (those of the
environment or profile on its own machine, when the batch brings no ``storage_options``). The
storage probe runs on the workers (once the version check has shown they import thumbflow).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client
from distributed.comm.core import CommClosedError

from pipeline._version import __version__
from pipeline.errors import ClusterError, ClusterLost, OutputError
from pipeline.locations import filesystem_for
from pipeline.redaction import redact_location, redact_text
from pipeline.stages.sources import is_url
from pipeline.storage import OutputRoot

_VERSION_PROBE = "__import__('pipeline._version', fromlist=['__version__']).__version__"


def _describe(answer: Any) -> str:
    if isinstance(answer, BaseException):
        return f"cannot import pipeline ({type(answer).__name__}: {answer})"
    return f"has thumbflow {answer}"


@contextmanager
def _scheduler_present() -> Iterator[None]:
    """A scheduler that goes away while we ask it is that, not a bug of ours."""
    try:
        yield
    except CommClosedError as error:
        raise ClusterLost(
            "the Dask scheduler went away during the checks before the batch; nothing was "
            "submitted: run it again once the scheduler is back"
        ) from error


def check_versions(client: Client) -> None:
    """Refuse, with the reason, unless the scheduler and every worker run our version."""
    with _scheduler_present():
        try:
            on_scheduler: Any = client.run_on_scheduler(eval, _VERSION_PROBE)
        except CommClosedError:
            raise
        except Exception as error:
            on_scheduler = error
        on_workers: dict[str, Any] = client.run(eval, _VERSION_PROBE, on_error="return")
    wrong = {"scheduler": on_scheduler} if on_scheduler != __version__ else {}
    wrong |= {worker: answer for worker, answer in on_workers.items() if answer != __version__}
    if wrong:
        details = "; ".join(
            f"{where} {_describe(answer)}" for where, answer in sorted(wrong.items())
        )
        raise ClusterError(
            f"the cluster cannot run thumbflow {__version__} safely, nothing was submitted: "
            f"{details}. Install thumbflow=={__version__} in the scheduler's and the workers' "
            "environments (see README, 'Running on a shared cluster')."
        )


def check_paths_visible(client: Client, paths: Iterable[str], writable: str) -> None:
    """Local input paths must exist on every worker, and the output folder be writable there;
    URLs are the storage's business and are not checked."""
    local = [path for path in paths if not is_url(path)]
    problems: list[str] = []
    with _scheduler_present():
        for path in local:
            seen = client.run(os.path.exists, os.path.abspath(path), on_error="return")
            missing = sorted(worker for worker, found in seen.items() if found is not True)
            if missing:
                problems.append(f"{path} is not visible on {', '.join(missing)}")
        if not is_url(writable):
            target = os.path.abspath(writable)
            allowed = client.run(os.access, target, os.W_OK, on_error="return")
            denied = sorted(worker for worker, ok in allowed.items() if ok is not True)
            if denied:
                problems.append(f"output {writable} is not writable on {', '.join(denied)}")
    if problems:
        raise ClusterError(
            "the workers do not see the same files as this machine, nothing was submitted: "
            + "; ".join(problems)
            + ". Use storage every worker mounts at the same path, or fsspec URLs."
        )


def storage_problems(inputs: list[str], root: OutputRoot) -> list[str]:
    """What this process cannot do with the batch's URLs: list an input, or write a probe file
    into the output (removed again). Runs on each worker; the words name no credential."""
    problems: list[str] = []
    for url in inputs:
        try:
            filesystem, path = filesystem_for(url, root.storage_options)
            if not filesystem.exists(path):
                problems.append(f"cannot see input {redact_location(url)}")
        except Exception as error:  # botocore's connection errors are no OSError: any will do
            reason = redact_text(f"{type(error).__name__}: {error}", url)
            problems.append(f"cannot list input {redact_location(url)} ({reason})")
    if not root.is_local:
        try:
            root.check_writable()
        except OutputError as error:  # says which output, and why
            problems.append(redact_text(str(error), root.url))
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            problems.append(redact_text(f"output {root.url!r} is not writable: {reason}", root.url))
    return problems


def check_storage_reachable(client: Client, inputs: Iterable[str], root: OutputRoot) -> None:
    """Every worker must list the URL inputs and write into a URL output, or nothing is
    submitted: a worker that cannot would fail each image it gets, or the batch's writes."""
    urls = list(inputs)
    if not urls and root.is_local:
        return
    with _scheduler_present():
        answers: dict[str, Any] = client.run(storage_problems, urls, root, on_error="return")
    problems = []
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            problems.append(f"{worker}: {type(answer).__name__}: {answer}")
        elif answer:
            problems.append(f"{worker}: {'; '.join(answer)}")
    if problems:
        raise ClusterError(
            "the workers cannot reach the batch's storage, nothing was submitted: "
            + "; ".join(problems)
            + ". Give every worker the store's package, network access and credentials "
            "(environment, profile, or storage_options=)."
        )
