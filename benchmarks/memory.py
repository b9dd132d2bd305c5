"""Peak memory of a worker on the biggest photo, with Dask and without.

thumbflow: a fresh LocalCluster(2); while ``pipeline.run`` processes the one photo, a thread
samples every worker's RSS with psutil every few milliseconds; afterwards each worker reports
its own ``ru_maxrss`` (the kernel's high-water mark, which no sampling interval can miss).
For comparison, thumbflow's stages and the seed-style code each run once in a fresh spawned
process that reports its ``ru_maxrss`` before and after the image.
"""

from __future__ import annotations

import os
import resource
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import psutil

import pipeline
from benchmarks import pillow_impls, runners
from benchmarks.report import median, megabytes, progress, table, verdict
from benchmarks.spec import Job
from pipeline.cluster import start_local_cluster

TARGET_BYTES = 400 * 2**20
SAMPLE_EVERY_S = 0.005


class RssSampler:
    """The highest RSS seen for each process while running, sampled from a thread."""

    def __init__(self, pids: list[int], every_s: float = SAMPLE_EVERY_S) -> None:
        self.every_s = every_s
        self.processes = [psutil.Process(pid) for pid in pids]
        self.peaks = {pid: 0 for pid in pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            for process in self.processes:
                try:
                    rss = process.memory_info().rss
                except psutil.Error:
                    continue
                self.peaks[process.pid] = max(self.peaks[process.pid], rss)
            time.sleep(self.every_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def thumbflow_peak(photo: str, warm: str) -> tuple[int, int, int]:
    """(idle RSS before the photo, sampled peak RSS, kernel max RSS) of the busiest worker."""
    connection = start_local_cluster(2, dashboard_address=":0")
    try:
        client = connection.client
        client.wait_for_workers(2)
        runners.warm_thumbflow(client, warm)
        pids = list(client.run(os.getpid).values())
        idle = max(psutil.Process(pid).memory_info().rss for pid in pids)
        with tempfile.TemporaryDirectory(prefix="thumbflow-bench-mem-") as out:
            with RssSampler(pids) as sampler:
                pipeline.run([photo], out, client=client)
            kernel = max(client.run(_max_rss_bytes).values())
    finally:
        connection.close()
    return idle, max(sampler.peaks.values()), kernel


def _one_image(process: Callable[[Job], int], source: str, out: str) -> tuple[int, int]:
    before = _max_rss_bytes()
    process(Job(0, source, out))
    return before, _max_rss_bytes()


def bare_peak(process: Callable[[Job], int], photo: str, warm: str) -> tuple[int, int]:
    """(max RSS after a warm-up image, max RSS after the photo) in a fresh process."""
    with (
        tempfile.TemporaryDirectory(prefix="thumbflow-bench-mem-") as out,
        ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool,
    ):
        pool.submit(_one_image, process, warm, out).result()
        return pool.submit(_one_image, process, photo, out).result()


def run(photo: str, rounds: int, warm: str) -> str:
    samples = []
    for round_number in range(rounds):
        samples.append(thumbflow_peak(photo, warm))
        idle, peak, kernel = samples[-1]
        progress(
            f"  round {round_number + 1}/{rounds}: idle {megabytes(idle)}, "
            f"sampled peak {megabytes(peak)}, ru_maxrss {megabytes(kernel)}"
        )
    rows = [
        [
            "thumbflow worker (LocalCluster, psutil sampled every 5 ms)",
            megabytes(median([s[0] for s in samples])),
            megabytes(median([s[1] for s in samples])),
            megabytes(median([s[2] for s in samples])),
        ]
    ]
    for label, process in (
        ("thumbflow's stages in a bare process", pillow_impls.bare),
        ("seed-style code in a bare process", pillow_impls.seed),
    ):
        before, after = bare_peak(process, photo, warm)
        rows.append([label, megabytes(before) + " (ru_maxrss)", "", megabytes(after)])
    worst = max(max(s[1], s[2]) for s in samples)
    return "\n".join(
        [
            table(["process", "RSS before the photo", "peak RSS, sampled", "ru_maxrss"], rows),
            "",
            table(
                ["target", "measured", "verdict"],
                [
                    [
                        f"peak worker RSS ≤ 400 MB on {Path(photo).name}",
                        megabytes(worst) + f" (worst of {rounds})",
                        verdict(worst <= TARGET_BYTES),
                    ]
                ],
            ),
        ]
    )
