"""Real ``dask scheduler`` and ``dask worker`` processes on loopback, started and stopped by pid."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from distributed import Client

from tests.commands import DASK, NEUTRAL_CWD, command_env
from tests.redis_server import free_port


@dataclass
class DaskCluster:
    """A scheduler and its workers as separate OS processes, like a shared cluster's."""

    port: int = field(default_factory=free_port)
    protocol: str = "tcp"
    scheduler_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    scheduler: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.protocol}://127.0.0.1:{self.port}"

    def _spawn(
        self, *args: str, env: dict[str, str] | None = None, prefix: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*prefix, *DASK, *args],
            env=command_env({**self.env, **(env or {})}),
            cwd=NEUTRAL_CWD,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # so stopping it takes its children (the nanny's worker) too
        )

    def start_scheduler(self) -> None:
        self.scheduler = self._spawn(
            "scheduler", "--host", "127.0.0.1", "--port", str(self.port),
            "--dashboard-address", ":0", *self.scheduler_args,
        )  # fmt: skip

    def add_worker(
        self,
        *,
        memory_limit: str = "4GB",
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        prefix: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """``prefix`` runs the worker under another command, e.g. in its own mount namespace."""
        worker = self._spawn(
            "worker", self.address, "--nthreads", "1", "--memory-limit", memory_limit,
            "--dashboard-address", ":0",
            # if a test dies before stopping it, the worker leaves once its scheduler is gone
            "--death-timeout", "60", *args, env=env, prefix=prefix,
        )  # fmt: skip
        self.workers.append(worker)
        return worker

    def wait_for(self, workers: int, client_kwargs: dict[str, object] | None = None) -> None:
        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(self.address, timeout=5, **(client_kwargs or {})) as client:
                    if workers:
                        remaining = max(1, deadline - time.monotonic())
                        client.wait_for_workers(workers, timeout=remaining)
                    return
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @staticmethod
    def _stop(process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)

    def stop_scheduler(self) -> None:
        if self.scheduler is not None:
            self._stop(self.scheduler)

    def stop(self) -> None:
        for worker in self.workers:
            self._stop(worker)
        self.workers.clear()
        self.stop_scheduler()


@contextmanager
def dask_cluster(workers: int = 2, **settings: object) -> Iterator[DaskCluster]:
    cluster = DaskCluster(**settings)  # type: ignore[arg-type]
    cluster.start_scheduler()
    try:
        for _ in range(workers):
            cluster.add_worker()
        cluster.wait_for(workers)
        yield cluster
    finally:
        cluster.stop()
