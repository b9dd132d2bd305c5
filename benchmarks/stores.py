"""Issue 13's inputs against local disk: photos on an object store, small images from URL lists.

Runs in the harness process (the client, and the LocalCluster's scheduler and nannies); the two
workers are processes of that cluster, started once and warmed, and each server is a child
process (``benchmarks.servers``). Within a part the two sides alternate, the order rotated each
round, each run into a fresh output folder or prefix, so nothing is reused; medians reported.

CPU is read with psutil per process group: the workers (their busy fraction is CPU seconds ÷
(wall x workers)), this process, the server, and the rest of the machine ("other work").
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from distributed import Client

import pipeline
from benchmarks.report import median, progress, table, verdict
from benchmarks.runners import remove, warm_thumbflow
from benchmarks.servers import ChildServer, moto_server, s3_options, web_server
from benchmarks.workloads import Workload, read_through

WORKERS = 2
S3_OVER_LOCAL = 1.3  # issue 13: object store wall ≤ 1.3x local wall, photos
BUSY_GOAL = 0.8  # issue 13: workers ≥ 80 % busy while fetching URLs
LOCAL, S3, URLS = "local disk", "S3 (moto_server)", "URL list (HTTP)"


def _cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _machine_busy() -> float:
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


@dataclass
class Side:
    """One way of giving thumbflow the images, and what each of its runs measured."""

    name: str
    walls: list[float] = field(default_factory=list)
    workers_s: list[float] = field(default_factory=list)
    client_s: list[float] = field(default_factory=list)  # client + scheduler + nannies
    server_s: list[float] = field(default_factory=list)
    others: list[float] = field(default_factory=list)  # cores' worth of other work
    ok: list[str] = field(default_factory=list)
    served: bool = False  # read from a server

    def busy(self, index: int) -> float:
        return self.workers_s[index] / (self.walls[index] * WORKERS)


@dataclass(frozen=True)
class Run:
    """One batch: its inputs, its output, and the options that reach them."""

    inputs: list[str]
    output: str
    storage_options: Mapping[str, Any] | None = None
    server: ChildServer | None = None  # the server it reads from, whose CPU is measured


def _measure(client: Client, side: Side, run: Run, workers: Sequence[int]) -> None:
    server = run.server
    server_pids = [server.process.pid] if server is not None and server.process else []
    before = (_cpu_seconds(workers), _cpu_seconds([os.getpid()]), _cpu_seconds(server_pids))
    machine_before = _machine_busy()
    start = time.perf_counter()
    report = pipeline.run(
        run.inputs, run.output, client=client, storage_options=run.storage_options
    )
    wall = time.perf_counter() - start
    machine = _machine_busy() - machine_before
    after = (_cpu_seconds(workers), _cpu_seconds([os.getpid()]), _cpu_seconds(server_pids))
    spent = [end - begin for begin, end in zip(before, after, strict=True)]
    side.walls.append(wall)
    side.workers_s.append(spent[0])
    side.client_s.append(spent[1])
    side.server_s.append(spent[2])
    side.others.append(max(0.0, machine - sum(spent)) / wall)
    side.ok.append(f"{report.status.ok}/{report.status.total}")
    side.served = server is not None


def _interleave(
    client: Client,
    sides: Sequence[tuple[Side, Callable[[int], Run], Callable[[Run], None]]],
    rounds: int,
) -> None:
    """Each side once a round, the order rotated; ``clean`` removes a run's output after it."""
    workers = list(client.run(os.getpid).values())
    for number in range(rounds):
        shift = number % len(sides)
        for side, make, clean in [*sides[shift:], *sides[:shift]]:
            run = make(number)
            _measure(client, side, run, workers)
            progress(f"  round {number + 1}/{rounds} {side.name}: {side.walls[-1]:.2f} s")
            clean(run)


def _rows(sides: Sequence[Side], count: int, server_label: str) -> list[list[str]]:
    rows = []
    for side in sides:
        runs = range(len(side.walls))
        rows.append(
            [
                side.name,
                f"{median(side.walls):.2f}",
                " / ".join(f"{wall:.2f}" for wall in side.walls),
                f"{count / median(side.walls):.1f}",
                f"{median([side.busy(i) for i in runs]) * 100:.0f} %",
                f"{median(side.workers_s):.1f}",
                f"{median(side.client_s):.1f}",
                f"{median(side.server_s):.1f}" if side.served else "-",
                " / ".join(f"{load:.1f}" for load in side.others),
                " / ".join(side.ok),
            ]
        )
    headers = [
        "inputs and output",
        "wall s (median)",
        "walls per round, s",
        "images/s",
        "workers busy (CPU ÷ wall x 2)",
        "workers CPU s",
        "harness CPU s (client, scheduler)",
        f"{server_label} CPU s",
        "other work, cores, per round",
        "images ok",
    ]
    return [headers, *rows]


def _table(sides: Sequence[Side], count: int, server_label: str) -> str:
    headers, *rows = _rows(sides, count, server_label)
    return table(headers, rows)


def object_store(client: Client, photos: Workload, rounds: int, warm: str, scratch: Path) -> str:
    """The photos from and to a bucket on moto_server vs from and to local disk."""
    import s3fs

    read_through(photos.sources)
    with moto_server() as server:
        options = s3_options(server)
        store = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        bucket = "thumbflow-bench"
        store.mkdir(bucket)
        progress(f"uploading {len(photos.sources)} photos to s3://{bucket}/photos/ (moto_server)")
        store.put(photos.sources, [f"{bucket}/photos/{Path(p).name}" for p in photos.sources])
        store.put(warm, f"{bucket}/warm/{Path(warm).name}")
        urls = [f"s3://{bucket}/photos/{Path(p).name}" for p in photos.sources]
        # s3fs, botocore and their connections are set up on every worker before the clock
        pipeline.run(
            [f"s3://{bucket}/warm/{Path(warm).name}"],
            f"s3://{bucket}/warm-out",
            client=client,
            storage_options=options,
        )
        local, remote = Side(LOCAL), Side(S3)

        def on_disk(number: int) -> Run:
            return Run(list(photos.sources), str(scratch / f"photos-local-{number}"))

        def on_s3(number: int) -> Run:
            return Run(urls, f"s3://{bucket}/out-{number}", options, server)

        def drop_local(run: Run) -> None:
            remove(Path(run.output))

        def drop_s3(run: Run) -> None:
            store.rm(run.output.removeprefix("s3://"), recursive=True)

        _interleave(client, [(local, on_disk, drop_local), (remote, on_s3, drop_s3)], rounds)
    ratio = median(remote.walls) / median(local.walls)
    best = min(remote.walls) / min(local.walls)
    moto_share = median(remote.server_s) / median(remote.walls)
    targets = table(
        ["target", "by median wall", "verdict", "by best wall"],
        [
            [
                f"S3 wall ≤ {S3_OVER_LOCAL}x local wall",
                f"{ratio:.2f}x",
                verdict(ratio <= S3_OVER_LOCAL),
                f"{best:.2f}x",
            ]
        ],
    )
    note = (
        f"moto_server is a Python server on the same 2 cores: it used {moto_share:.2f} cores "
        "during the S3 runs (its CPU column), CPU a real object store spends on its own "
        "machines, so the ratio is pessimistic."
    )
    return f"{_table([local, remote], len(photos.sources), 'moto_server')}\n\n{targets}\n\n{note}"


def url_list(client: Client, images: Workload, rounds: int, latency_s: float, scratch: Path) -> str:
    """The same small images from a URL list (a web server with latency) vs from local disk."""
    read_through(images.sources)
    folder = Path(images.sources[0]).parent
    with web_server(folder, latency_s) as server:
        listing = scratch / "urls.txt"
        names = [Path(source).name for source in images.sources]
        listing.write_text("".join(f"{server.endpoint}/{name}\n" for name in names))
        local, web = Side(LOCAL), Side(URLS)

        def on_disk(number: int) -> Run:
            return Run(list(images.sources), str(scratch / f"urls-local-{number}"))

        def on_web(number: int) -> Run:
            return Run([str(listing)], str(scratch / f"urls-web-{number}"), server=server)

        def drop(run: Run) -> None:
            remove(Path(run.output))

        _interleave(client, [(local, on_disk, drop), (web, on_web, drop)], rounds)
    busy = median([web.busy(i) for i in range(len(web.walls))])
    # On a shared machine the workers get less than their two cores whatever they read; the
    # local runs of the same rounds show how much they could get.
    local_busy = median([local.busy(i) for i in range(len(local.walls))])
    ratio = median(web.walls) / median(local.walls)
    targets = table(
        ["target", "measured (median)", "verdict"],
        [
            [
                f"workers busy ≥ {BUSY_GOAL * 100:.0f} % while fetching",
                f"{busy * 100:.0f} %",
                verdict(busy >= BUSY_GOAL),
            ],
            [
                "workers busy fetching ÷ busy reading local disk, same rounds",
                f"{busy / local_busy:.2f}",
                "",
            ],
            ["URL list wall ÷ local wall (no goal; latency hidden if near 1)", f"{ratio:.2f}x", ""],
        ],
    )
    label = f"web server ({latency_s * 1000:.0f} ms)"
    return f"{_table([local, web], len(images.sources), label)}\n\n{targets}"


def start_client(warm: str) -> tuple[Any, Client]:
    """The pre-started cluster both parts share, warmed like ``compare``'s."""
    from pipeline.cluster import start_local_cluster

    connection = start_local_cluster(WORKERS, dashboard_address=":0")
    client = connection.client
    client.wait_for_workers(WORKERS)
    warm_thumbflow(client, warm)
    return connection, client
