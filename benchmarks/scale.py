"""Many small images: do client and scheduler memory stay flat, and the speed steady, as N grows?

Runs N and then N/10 of the cached small images (64-640 px a side), each on a fresh cluster
whose scheduler is a process of its own (``separate_cluster``), so the harness process is the
client alone. The inputs are given as folders, as a user would.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from distributed import Client

import pipeline
from benchmarks import runners
from benchmarks.cpu import CpuMeter
from benchmarks.memory import RssSampler
from benchmarks.report import megabytes, progress, table, verdict
from benchmarks.separate_cluster import separate_cluster
from benchmarks.workloads import SCALE_FOLDER_SIZE, read_through, scale_folders

CLIENT_LIMIT = 300 * 2**20
SCHEDULER_LIMIT = 500 * 2**20
FIRST_OUTPUT_LIMIT_S = 10.0
RATE_KEPT = 0.8
FULL_SCALE = 100_000
SAMPLE_EVERY_S = 0.25
PROGRESS_EVERY_S = 30.0
DERIVATIVE_SUFFIXES = (".jpg", ".webp", ".avif")


class FirstOutput:
    """When did the first finished derivative appear under ``root``? Polled from a thread;
    temporary files end in ``.tmp-<id>`` and so are never taken for a finished one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.found_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _any_derivative(self) -> bool:
        try:
            for fan_out in os.scandir(self.root):
                if not fan_out.is_dir():
                    continue
                for image in os.scandir(fan_out.path):
                    if any(f.name.endswith(DERIVATIVE_SUFFIXES) for f in os.scandir(image.path)):
                        return True
        except (FileNotFoundError, NotADirectoryError):
            pass  # the output root or a folder appears while we look
        return False

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self._any_derivative():
                self.found_at = time.perf_counter()
                return
            time.sleep(0.01)

    def __enter__(self) -> FirstOutput:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class ScaleRun:
    count: int
    wall_s: float
    submit_s: float
    first_output_s: float
    cpu_s: float  # client, scheduler and workers
    others_cores: float  # other work on the machine meanwhile, in cores
    client_before: int
    client_peak: int
    scheduler_peak: int
    scheduler_end: int
    ok: int

    @property
    def images_per_s(self) -> float:
        return self.count / self.wall_s


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def measure(folders: list[Path], count: int, warm: str) -> ScaleRun:
    with separate_cluster(workers=2) as cluster:
        with tempfile.TemporaryDirectory(prefix="thumbflow-bench-warm-") as scratch:
            pipeline.run([warm], scratch, scheduler=cluster.address)
        out = Path(tempfile.mkdtemp(prefix=f"thumbflow-bench-scale-{count}-"))
        client_before = _rss()
        meter = CpuMeter([cluster.scheduler_pid, *cluster.worker_pids])
        try:
            with (
                RssSampler([os.getpid(), cluster.scheduler_pid], SAMPLE_EVERY_S) as sampler,
                FirstOutput(out) as first,
            ):
                meter.start()
                start = time.perf_counter()
                handle = pipeline.submit([str(f) for f in folders], out, scheduler=cluster.address)
                submitted = time.perf_counter() - start
                report = _wait(handle, count)
                wall = time.perf_counter() - start
                cpu = meter.stop()
            with Client(cluster.address, set_as_default=False) as client:
                scheduler_end = client.run_on_scheduler(_rss)
        finally:
            progress(f"    removing {out}")
            runners.remove(out)
    return ScaleRun(
        count=count,
        wall_s=wall,
        cpu_s=cpu,
        others_cores=meter.others_s / wall,
        submit_s=submitted,
        first_output_s=(first.found_at or float("nan")) - start,
        client_before=client_before,
        client_peak=sampler.peaks[os.getpid()],
        scheduler_peak=sampler.peaks[cluster.scheduler_pid],
        scheduler_end=scheduler_end,
        ok=report.status.ok,
    )


def _wait(handle: pipeline.BatchHandle, count: int) -> pipeline.BatchReport:
    """The report as soon as the batch ends, with a progress line every half minute."""
    while True:
        try:
            return handle.result(timeout=PROGRESS_EVERY_S)
        except TimeoutError:
            status = handle.status()
            progress(f"    {status.ok + status.failed:,}/{count:,} images, client {_mb(_rss())}")


def _mb(size: float) -> str:
    return megabytes(size)


def run(cache: Path, count: int, warm: str) -> str:
    # Whole folders, in a multiple of ten so that a tenth of the run is whole folders too.
    folders_needed = max(10, -(-count // (10 * SCALE_FOLDER_SIZE)) * 10)
    count = folders_needed * SCALE_FOLDER_SIZE
    folders = scale_folders(cache, count)
    read_through([str(p) for folder in folders for p in folder.iterdir()])
    results = []
    for n in (count, count // 10):
        progress(f"  scale: {n} images")
        results.append(measure(folders[: n // SCALE_FOLDER_SIZE], n, warm))
    big, small = results
    rows = [
        [
            f"{r.count:,}",
            f"{r.wall_s:.1f}",
            f"{r.images_per_s:.1f}",
            f"{r.cpu_s / r.count * 1000:.1f}",
            f"{r.others_cores:.1f}",
            f"{r.first_output_s:.2f}",
            f"{r.submit_s:.2f}",
            f"{_mb(r.client_before)} → {_mb(r.client_peak)}",
            f"{_mb(r.scheduler_peak)} / {_mb(r.scheduler_end)}",
            f"{r.ok:,}",
        ]
        for r in results
    ]
    headers = [
        "images",
        "wall s",
        "images/s",
        "CPU ms/image (all processes)",
        "other work, cores",
        "first derivative after submit, s",
        "submit() returned after, s",
        "client RSS before → peak",
        "scheduler RSS peak / at end",
        "ok",
    ]
    ratio = big.images_per_s / small.images_per_s
    cpu_ratio = (small.cpu_s / small.count) / (big.cpu_s / big.count)
    targets: list[tuple[str, str, bool]] = [
        (
            f"client RSS ≤ 300 MB at {big.count:,}",
            _mb(big.client_peak),
            big.client_peak <= CLIENT_LIMIT,
        ),
        (
            f"scheduler RSS ≤ 500 MB at {big.count:,}",
            _mb(big.scheduler_peak),
            big.scheduler_peak <= SCHEDULER_LIMIT,
        ),
        (
            "first derivative < 10 s after submit",
            f"{big.first_output_s:.2f} s",
            big.first_output_s < FIRST_OUTPUT_LIMIT_S,
        ),
        (
            f"images/s at {big.count:,} ≥ {RATE_KEPT}x at {small.count:,}",
            f"{ratio:.2f}x (from CPU ms/image: {cpu_ratio:.2f}x)",
            ratio >= RATE_KEPT,
        ),
    ]
    if big.count < FULL_SCALE:
        # Run smaller than the 100k: say what the client would hold at 100k if it keeps
        # growing as it did here (linear in the number of images, which is what it does now).
        growth = (big.client_peak - big.client_before) / big.count
        projected = big.client_before + growth * FULL_SCALE
        targets.append(
            (
                f"client RSS ≤ 300 MB at {FULL_SCALE:,}, extrapolated linearly "
                f"({growth:,.0f} bytes/image)",
                _mb(projected),
                projected <= CLIENT_LIMIT,
            )
        )
    return "\n".join(
        [
            table(headers, rows),
            "",
            table(["target", "measured", "verdict"], [[t, m, verdict(ok)] for t, m, ok in targets]),
        ]
    )
