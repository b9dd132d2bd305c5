"""Run one implementation once, timed the same way for all.

The executor (a LocalCluster or a process pool) is started and every one of its workers has
processed a warm-up image before the clock starts; the clock stops when the last derivative is
on disk. Start-up is therefore excluded for thumbflow and the pools alike, and each executor is
shut down before the next one starts, so no idle cluster competes with a pool for the cores.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from distributed import Client

import pipeline
from benchmarks.cpu import CpuMeter
from benchmarks.implementations import PoolImpl
from benchmarks.spec import CONFIG, DERIVATIVES, Derivative, Job
from pipeline.cluster import start_local_cluster
from pipeline.config import FILE_EXTENSIONS
from pipeline.stages.encode import encode
from pipeline.stages.resize import render_sizes
from pipeline.stages.validate import read_header

# source → (size name, extension) → path of that derivative
Outputs = dict[str, dict[Derivative, str]]


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # user + system of every process taking part: this one and the workers
    others_s: float  # CPU seconds that other work on the machine took meanwhile
    outputs: Outputs
    note: str = ""


def warm_worker(source: str) -> int:
    """Run thumbflow's stages once in this process (imports, codec set-up, first allocations)."""
    header = read_header(source, os.path.getsize(source), CONFIG)
    for image in render_sizes(source, header, CONFIG).values():
        for encoding in CONFIG.encodings:
            encode(image, encoding, CONFIG.background)
    return os.getpid()


def warm_thumbflow(client: Client, warm_source: str) -> None:
    """Every worker runs the stages once, then one tiny batch warms the client and scheduler."""
    client.run(warm_worker, warm_source)
    with tempfile.TemporaryDirectory(prefix="thumbflow-bench-warm-") as scratch:
        pipeline.run([warm_source], scratch, client=client)


def thumbflow_outputs(manifest: str, root: Path) -> Outputs:
    outputs: Outputs = {}
    with open(manifest, encoding="utf-8") as stream:
        for line in stream:
            row = json.loads(line)
            outputs[row["source"]] = {
                (item["size"], FILE_EXTENSIONS[item["format"]]): str(root / item["path"])
                for item in row["outputs"]
            }
    return outputs


def run_thumbflow(
    inputs: Sequence[str], out: Path, warm_source: str, workers: int = 2
) -> tuple[Run, pipeline.BatchReport]:
    """``pipeline.run`` on a pre-started LocalCluster, the same one ``workers=N`` would start
    (``start_local_cluster`` carries thumbflow's worker tuning); its dashboard on a free port so
    a concurrent test run's :8787 does not collide."""
    connection = start_local_cluster(workers, dashboard_address=":0")
    try:
        client = connection.client
        client.wait_for_workers(workers)
        warm_thumbflow(client, warm_source)
        # The workers; the scheduler and the nannies run in this process, as the client does.
        meter = CpuMeter(list(client.run(os.getpid).values()))
        meter.start()
        start = time.perf_counter()
        report = pipeline.run(list(inputs), out, client=client)
        wall = time.perf_counter() - start
        cpu = meter.stop()
    finally:
        connection.close()
    status = report.status
    note = "" if status.ok == status.total else f"{status.total - status.ok} not ok"
    outputs = thumbflow_outputs(report.manifest, out)
    return Run(wall, cpu, meter.others_s, outputs, note), report


def _warm_call(impl: PoolImpl, job: Job) -> int:
    impl.process(job)
    # Long enough that the other worker must take the next warm-up job.
    time.sleep(0.2)
    return os.getpid()


def _warm_pool(pool: ProcessPoolExecutor, impl: PoolImpl, job: Job, workers: int) -> list[int]:
    """Warm every worker of the pool; returns their process ids."""
    seen: set[int] = set()
    for _ in range(50):
        seen.update(
            f.result() for f in [pool.submit(_warm_call, impl, job) for _ in range(workers)]
        )
        if len(seen) >= workers:
            return sorted(seen)
    raise RuntimeError(f"{impl.name}: only {len(seen)} of {workers} pool workers started")


def run_pool(
    impl: PoolImpl, sources: Sequence[str], out: Path, warm_source: str, workers: int = 2
) -> Run:
    """``ProcessPoolExecutor(workers)``, one image per task. Spawned, not forked: this process
    runs a Dask client's event-loop thread, and spawn is also how Dask starts its workers."""
    jobs = [Job(index, source, str(out)) for index, source in enumerate(sources)]
    with (
        tempfile.TemporaryDirectory(prefix="thumbflow-bench-warm-") as scratch,
        ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=impl.prepare
        ) as pool,
    ):
        meter = CpuMeter(_warm_pool(pool, impl, Job(0, warm_source, scratch), workers))
        meter.start()
        start = time.perf_counter()
        written = sum(pool.map(impl.process, jobs))
        wall = time.perf_counter() - start
        cpu = meter.stop()
    outputs = {job.source: {d: job.path(*d) for d in DERIVATIVES} for job in jobs}
    expected = len(jobs) * len(DERIVATIVES)
    note = "" if written == expected else f"wrote {written} of {expected}"
    return Run(wall, cpu, meter.others_s, outputs, note)


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
