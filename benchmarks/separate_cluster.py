"""A scheduler and workers in processes of their own, for measuring client and scheduler apart.

A LocalCluster runs its scheduler inside the client's process, so the two memory footprints
could not be told apart. This starts ``dask scheduler`` and ``dask worker --nworkers N
--nthreads 1`` as subprocesses with thumbflow's LocalCluster tuning passed down as inherited
Dask config — the layout of a shared cluster, the other way thumbflow is used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dask
from distributed import Client

from pipeline.cluster import LOCAL_CLUSTER_CONFIG

START_TIMEOUT_S = 60


@dataclass(frozen=True)
class SeparateCluster:
    address: str
    scheduler_pid: int
    worker_pids: list[int]


def _environment() -> dict[str, str]:
    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        inherited = dask.config.serialize(dask.config.global_config)
    return os.environ | {"DASK_INTERNAL_INHERIT_CONFIG": inherited}


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def separate_cluster(workers: int) -> Iterator[SeparateCluster]:
    environment = _environment()
    with (
        tempfile.TemporaryDirectory(prefix="thumbflow-bench-cluster-") as folder,
        open(Path(folder) / "cluster.log", "wb") as log,
    ):
        scheduler_file = Path(folder) / "scheduler.json"
        scheduler = subprocess.Popen(
            [
                *(sys.executable, "-m", "distributed.cli.dask_scheduler"),
                *("--host", "127.0.0.1", "--port", "0", "--dashboard-address", ":0"),
                *("--scheduler-file", str(scheduler_file)),
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker_group: subprocess.Popen[bytes] | None = None
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not scheduler_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            address = json.loads(scheduler_file.read_text())["address"]
            worker_group = subprocess.Popen(
                [
                    *(sys.executable, "-m", "distributed.cli.dask_worker", address),
                    *("--nworkers", str(workers), "--nthreads", "1", "--no-dashboard"),
                ],
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            with Client(address, set_as_default=False) as client:
                client.wait_for_workers(workers, timeout=START_TIMEOUT_S)
                pid = client.run_on_scheduler(os.getpid)
                workers_pids = list(client.run(os.getpid).values())
            yield SeparateCluster(address, pid, workers_pids)
        finally:
            if worker_group is not None:
                _stop(worker_group)
            _stop(scheduler)
