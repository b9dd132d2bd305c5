"""``python -m benchmarks.dask_facts [--quick] [--only NAME ...] [--photo PATH]``.

Re-measures the Dask/distributed and Pillow behaviour that thumbflow's design rests on
(``docs/design.md`` explains what each number is for) and prints one Markdown table. Every fact
is one function returning rows; each Dask fact starts its own LocalCluster of two single-threaded
worker processes on 127.0.0.1 and closes it before returning. Times are medians over the rounds
run (``--quick``: fewer rounds, smaller sizes). The Pillow fact needs a 10-12 MP camera JPEG:
the photo corpus's by default, and it is skipped with a note when the corpus is absent.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import dask
import PIL
from dask import delayed
from distributed import Client, LocalCluster, wait
from distributed.utils import key_split
from PIL import Image, ImageChops, ImageStat

from benchmarks.workloads import CORPUS

Row = tuple[str, str, str]  # fact, what was measured, value

# A 12.2 MP camera JPEG (4032 x 3024), the largest landscape photo of 10-12 MP in the corpus.
PHOTO = "samsung_galaxy_s9plus.jpg"
# What thumbflow's own LocalCluster sets; fact 10 compares it with distributed's defaults.
TUNED = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
}
BOXES = (("large", 1920, 1080), ("medium", 800, 600), ("thumbnail", 150, 150))
MB = 1_000_000
LIMIT_S = 60.0  # a single measurement predicted to take longer than this is skipped


@contextlib.contextmanager
def cluster(workers: int = 2, config: dict[str, Any] | None = None) -> Iterator[Client]:
    """A LocalCluster of ``workers`` single-threaded processes on the loopback interface.

    Its nannies live in this process and write ``pre-spawn-environ`` into ``os.environ``, where
    every later cluster would inherit it: the environment is put back afterwards."""
    saved = dict(os.environ)
    with (
        dask.config.set(TUNED if config is None else config),
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.CRITICAL,
        ) as local,
        Client(local) as client,  # the default client: distributed.wait() needs one
    ):
        try:
            yield client
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _scheduler_task_count(client: Client) -> int:
    return int(client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)))


def _settle(client: Client, timeout: float = 30.0) -> None:
    """Wait until the scheduler has forgotten every task of the previous measurement."""
    deadline = time.monotonic() + timeout
    while _scheduler_task_count(client) and time.monotonic() < deadline:
        time.sleep(0.05)


def _noop(i: int) -> int:
    return i


def _inc(i: int) -> int:
    return i + 1


def _spin(cpu_seconds: float) -> float:
    """Burn ``cpu_seconds`` of this process's CPU (not wall: a preempted task still does it all)."""
    end = time.process_time() + cpu_seconds
    while time.process_time() < end:
        pass
    return cpu_seconds


# --- 1. per-task overhead ------------------------------------------------------------------------


def task_overhead(quick: bool = False) -> list[Row]:
    rounds = 2 if quick else 5
    trivial = 500 if quick else 2000
    rows: list[Row] = []
    with cluster() as client:
        client.gather(client.map(_noop, range(50), pure=False))  # warm the workers
        walls = []
        for _ in range(rounds):
            start = time.perf_counter()
            futures = client.map(_noop, range(trivial), pure=False)
            wait(futures)
            walls.append(time.perf_counter() - start)
            del futures
            _settle(client)
        per_task = _median(walls) / trivial * 1000
        rows.append(
            (
                "1 per-task overhead",
                f"{trivial} no-op tasks, 2 workers: wall per task",
                f"{per_task:.2f} ms ({2 * per_task:.1f} ms of the 2 cores per task)",
            )
        )
        for work_ms, count in ((20, 100), (200, 10)):
            walls = []
            for _ in range(rounds):
                start = time.perf_counter()
                futures = client.map(_spin, [work_ms / 1000] * count, pure=False)
                wait(futures)
                walls.append(time.perf_counter() - start)
                del futures
                _settle(client)
            ideal = count * work_ms / 1000 / 2
            lost = _median(walls) / ideal - 1
            rows.append(
                (
                    "1 per-task overhead",
                    f"{count} tasks of {work_ms} ms CPU: wall vs ideal {ideal:.1f} s",
                    f"{_median(walls):.2f} s (+{lost:.0%})",
                )
            )
    return rows


# --- 2. compute() of a long list of delayed objects ----------------------------------------------


def compute_list(quick: bool = False) -> list[Row]:
    """Time from ``client.compute(list)`` to the first result: the graph work that must finish
    before any task runs. The rest is cancelled, so running the tasks is not measured."""
    sizes = (1000, 2000, 4000) if quick else (2000, 5000, 10000, 20000)
    rounds = 1 if quick else 3
    rows: list[Row] = []
    with cluster() as client:
        for optimize in (False, True):
            last: tuple[int, float] | None = None
            for n in sizes:
                if last is not None:
                    predicted = last[1] * (n / last[0]) ** 2
                    if predicted > LIMIT_S:
                        rows.append(
                            (
                                "2 compute(list)",
                                f"{n} delayed, optimize_graph={optimize}",
                                f"skipped: ~{predicted:.0f} s predicted (quadratic from {last[0]})",
                            )
                        )
                        continue
                submits, firsts = [], []
                for attempt in range(rounds):
                    if attempt and firsts[-1] > 15:
                        break  # one slow round says enough
                    items = [delayed(_inc, pure=False)(i) for i in range(n)]
                    start = time.perf_counter()
                    futures = client.compute(items, optimize_graph=optimize)
                    submits.append(time.perf_counter() - start)
                    wait(futures, timeout=LIMIT_S * 3, return_when="FIRST_COMPLETED")
                    firsts.append(time.perf_counter() - start)
                    client.cancel(futures)
                    del futures, items
                    _settle(client, timeout=LIMIT_S)
                last = (n, _median(firsts))
                rows.append(
                    (
                        "2 compute(list)",
                        f"{n} delayed, optimize_graph={optimize}",
                        f"first result after {_median(firsts):.2f} s "
                        f"(compute() returned after {_median(submits):.2f} s)",
                    )
                )
    return rows


# --- 3. keys -------------------------------------------------------------------------------------


def _one() -> int:
    return 1


def _two() -> int:
    return 2


def keys(quick: bool = False) -> list[Row]:
    token = uuid.uuid4().hex[:10]
    rows: list[Row] = [
        (
            "3 keys",
            f'key_split(("resize-{token}", 7)) / key_split("resize-photo")',
            f"{key_split((f'resize-{token}', 7))!r} / {key_split('resize-photo')!r}",
        )
    ]
    with cluster() as client:
        chain = [delayed(_noop)(i, dask_key_name=(f"hash-{token}", i)) for i in range(3)]
        chain = [
            delayed(_inc)(t, dask_key_name=(f"resize-{token}", i)) for i, t in enumerate(chain)
        ]
        futures = client.compute(chain, optimize_graph=False)
        wait(futures)
        groups = client.run_on_scheduler(
            lambda dask_scheduler: sorted(dask_scheduler.task_prefixes)
        )
        rows.append(("3 keys", "task prefixes (dashboard groups) of tuple keys", ", ".join(groups)))
        first = client.submit(_one, key=f"reused-{token}")
        first.result()
        second = client.submit(_two, key=f"reused-{token}")  # different function, same key
        rows.append(
            (
                "3 keys",
                "submit f()->1 then g()->2 under one still-held key",
                f"second future returns {second.result()}",
            )
        )
    return rows


# --- 4. linear chains stay on one worker ---------------------------------------------------------


def _make(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size)


def _touch(data: bytes) -> bytes:
    return data[1:] + data[:1]


def _summary(data: bytes) -> int:
    return len(data)


def _combine(a: bytes, b: bytes) -> int:
    return len(a) + len(b)


def _sent(client: Client) -> tuple[int, int]:
    per_worker = client.run(
        lambda dask_worker: (
            dask_worker.transfer_outgoing_bytes_total,
            dask_worker.transfer_outgoing_count_total,
        )
    )
    return sum(b for b, _ in per_worker.values()), sum(c for _, c in per_worker.values())


def chains(quick: bool = False) -> list[Row]:
    count = 40 if quick else 200
    size = 6 * MB
    rows: list[Row] = []
    with cluster() as client:
        bytes_before, count_before = _sent(client)
        leaves = []
        for i in range(count):
            step = delayed(_make)(i, size, dask_key_name=(f"make-{i}", i))
            step = delayed(_touch)(step, dask_key_name=(f"touch1-{i}", i))
            step = delayed(_touch)(step, dask_key_name=(f"touch2-{i}", i))
            leaves.append(delayed(_summary)(step, dask_key_name=(f"leaf-{i}", i)))
        start = time.perf_counter()
        client.gather(client.compute(leaves, optimize_graph=False))
        wall = time.perf_counter() - start
        bytes_after, count_after = _sent(client)
        rows.append(
            (
                "4 chains",
                f"{count} chains make→touch→touch→leaf, {size // MB} MB between steps",
                f"{(bytes_after - bytes_before) / MB:.1f} MB in {count_after - count_before} "
                f"transfers between workers ({wall:.1f} s)",
            )
        )
        # Control: a task that needs two results made on different workers must move one.
        workers = sorted(client.scheduler_info()["workers"])
        pairs = 5
        made = [
            client.submit(_make, 10_000 + i, size, workers=[workers[i % 2]], pure=False)
            for i in range(2 * pairs)
        ]
        wait(made)
        bytes_before, count_before = _sent(client)
        joined = [client.submit(_combine, made[2 * i], made[2 * i + 1]) for i in range(pairs)]
        client.gather(joined)
        bytes_after, count_after = _sent(client)
        rows.append(
            (
                "4 chains",
                f"control: {pairs} tasks joining two {size // MB} MB results from both workers",
                f"{(bytes_after - bytes_before) / MB:.1f} MB in {count_after - count_before} "
                "transfers",
            )
        )
    return rows


# --- 5. cancel -----------------------------------------------------------------------------------


def _sleep_then_mark(folder: str, i: int, seconds: float) -> int:
    """Ignores cancellation: sleeps, then leaves a file saying when it finished."""
    time.sleep(seconds)
    Path(folder, f"{i}.done").write_text(repr(time.time()))
    return i


def _sleep_watching(folder: str, i: int, seconds: float) -> int:
    """Checks the worker's own record of this task every 5 ms, as thumbflow's tasks do."""
    from distributed import get_worker

    worker = get_worker()
    key = worker.get_current_task()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        task = worker.state.tasks.get(key)
        if task is None or task.state == "cancelled":
            Path(folder, f"{i}.noticed").write_text(repr(time.time()))
            return -1
        time.sleep(0.005)
    Path(folder, f"{i}.done").write_text(repr(time.time()))
    return i


def cancel(quick: bool = False) -> list[Row]:
    count = 1000
    rounds = 2 if quick else 5
    rows: list[Row] = []
    call_ms, gone_ms, ran_on, noticed_ms = [], [], [], []
    with cluster() as client, tempfile.TemporaryDirectory() as scratch:
        for attempt in range(rounds):
            folder = Path(scratch, str(attempt))
            folder.mkdir()
            watching = attempt % 2 == 1
            function = _sleep_watching if watching else _sleep_then_mark
            futures = client.map(function, [str(folder)] * count, range(count), [1.0] * count)
            time.sleep(0.4)  # two tasks are running, the other 998 wait
            cancelled_at = time.time()
            start = time.perf_counter()
            client.cancel(futures)
            call_ms.append((time.perf_counter() - start) * 1000)
            while _scheduler_task_count(client):
                time.sleep(0.001)
            gone_ms.append((time.perf_counter() - start) * 1000)
            time.sleep(1.2)  # longer than any task runs
            done = [float(p.read_text()) for p in folder.glob("*.done")]
            noticed = [float(p.read_text()) for p in folder.glob("*.noticed")]
            if watching:
                noticed_ms.extend((t - cancelled_at) * 1000 for t in noticed)
            else:
                ran_on.append(sum(t > cancelled_at for t in done))
            del futures
    rows.append(
        (
            "5 cancel",
            f"client.cancel() of {count} futures (2 running, rest queued)",
            f"call {_median(call_ms):.1f} ms; scheduler holds none after {_median(gone_ms):.0f} ms",
        )
    )
    rows.append(
        (
            "5 cancel",
            "running tasks that ignore the cancel and finish afterwards",
            f"{_median(ran_on):.0f} per round (all that were running)",
        )
    )
    if noticed_ms:
        rows.append(
            (
                "5 cancel",
                "running tasks polling their own state every 5 ms: cancel → noticed",
                f"median {_median(noticed_ms):.0f} ms, max {max(noticed_ms):.0f} ms "
                f"({len(noticed_ms)} tasks)",
            )
        )
    return rows


# --- 6. cancelling a held upstream future --------------------------------------------------------


def _slow_value() -> int:
    time.sleep(1.0)
    return 5


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        self.messages.append(type(error).__name__ if error else record.getMessage())


def upstream_cancel(quick: bool = False) -> list[Row]:
    """Hold the head and the leaf of a -> b -> c, not b, and cancel only a."""
    collect = _Collect()
    watched = [logging.getLogger(name) for name in ("distributed.core", "asyncio")]
    saved = [(log.handlers[:], log.propagate, log.level) for log in watched]
    for log in watched:
        log.handlers, log.propagate = [collect], False
        log.setLevel(logging.ERROR)
    try:
        with cluster() as client:
            bystanders = client.map(_noop, range(5), pure=False)
            wait(bystanders)
            head = client.submit(_slow_value, key="head", pure=False)
            middle = client.submit(_inc, head, key="middle")
            leaf = client.submit(_inc, middle, key="leaf")
            del middle
            time.sleep(0.2)
            client.cancel([head])
            time.sleep(2.0)
            statuses = sorted({f.status for f in bystanders})
            try:
                after = f"a new task then returned {client.submit(_one, pure=False).result(10)}"
            except Exception as error:
                after = f"a new task then failed: {type(error).__name__}"
            leaf_status = leaf.status
    finally:
        for log, (handlers, propagate, level) in zip(watched, saved, strict=True):
            log.handlers, log.propagate = handlers, propagate
            log.setLevel(level)
    errors = sorted({m for m in collect.messages if "Error" in m})
    return [
        (
            "6 upstream cancel",
            "cancel(head) of head→middle→leaf, middle not held",
            f"scheduler errors: {', '.join(errors) or 'none'}; leaf {leaf_status}; "
            f"5 unrelated finished futures now {'/'.join(statuses)}; {after}",
        )
    ]


# --- 7. re-runs after a worker dies --------------------------------------------------------------


def _record_run(folder: str, i: int, seconds: float) -> int:
    _spin(seconds)
    Path(folder, f"{i}-{uuid.uuid4().hex}").write_text(repr(time.time()))
    return i


def rerun(quick: bool = False) -> list[Row]:
    count = 200 if quick else 600
    with cluster() as client, tempfile.TemporaryDirectory() as folder:
        pids = client.run(os.getpid)
        futures = client.map(_record_run, [folder] * count, range(count), [0.02] * count)
        while len(os.listdir(folder)) < count // 2:
            time.sleep(0.01)
        victim = sorted(pids)[0]
        killed_at = time.time()
        os.kill(pids[victim], signal.SIGKILL)
        client.gather(futures)
        runs: dict[int, list[float]] = {}
        for path in Path(folder).iterdir():
            runs.setdefault(int(path.name.split("-")[0]), []).append(float(path.read_text()))
    twice = [times for times in runs.values() if len(times) > 1]
    finished_first = sum(min(times) < killed_at for times in twice)
    total = sum(len(times) for times in runs.values())
    return [
        (
            "7 worker death",
            f"{count} tasks of 20 ms, kill -9 one of 2 workers halfway",
            f"{total} runs: {len(twice)} tasks ran twice ({finished_first} of them had finished "
            f"before the kill); a bare counter would read {total}",
        )
    ]


# --- 8. code on a separate scheduler and workers -------------------------------------------------

_PROBE_MODULE = "thumbflow_probe_module"


def _start(command: list[str], path: str | None, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if path:
        env["PYTHONPATH"] = path
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0][:90]


def _import_case(scratch: Path, on_scheduler: bool, on_worker: bool) -> str:
    """A scheduler and a worker as processes of their own; the task's module is on the client's
    path and, as asked, on theirs."""
    code_dir = scratch / "code"
    tag = f"s{int(on_scheduler)}w{int(on_worker)}"
    info = scratch / f"{tag}.json"
    scheduler = _start(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(info),
        ],
        str(code_dir) if on_scheduler else None,
        scratch / f"{tag}-scheduler.log",
    )
    worker = None
    try:
        while not info.exists():
            time.sleep(0.1)
        worker = _start(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                "--scheduler-file",
                str(info),
                "--nthreads",
                "1",
                "--host",
                "127.0.0.1",
                "--no-dashboard",
            ],
            str(code_dir) if on_worker else None,
            scratch / f"{tag}-worker.log",
        )
        with Client(scheduler_file=str(info), timeout=30) as client:
            client.wait_for_workers(1, timeout=30)
            module = __import__(_PROBE_MODULE)
            try:
                future = client.submit(module.work, 41, pure=False)
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and future.status == "pending":
                    time.sleep(0.2)
                if future.status == "finished":
                    outcome = f"result {future.result()}"
                elif future.status == "error":
                    error = future.exception()
                    outcome = f"task failed: {type(error).__name__}: {_first_line(error)}"
                else:
                    outcome = f"still {future.status} after 15 s"
            except Exception as error:
                outcome = f"submit raised {type(error).__name__}: {_first_line(error)}"
            alive = len(client.scheduler_info()["workers"])
            return f"{outcome}; workers connected at the end: {alive} of 1"
    finally:
        for process in (worker, scheduler):
            if process is not None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def shared_code(quick: bool = False) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        scratch = Path(name)
        (scratch / "code").mkdir()
        (scratch / "code" / f"{_PROBE_MODULE}.py").write_text("def work(x):\n    return x + 1\n")
        sys.path.insert(0, str(scratch / "code"))
        try:
            for on_scheduler, on_worker in ((True, True), (False, True), (True, False)):
                where = {
                    (True, True): "scheduler and worker",
                    (False, True): "worker only",
                    (True, False): "scheduler only",
                }[(on_scheduler, on_worker)]
                rows.append(
                    (
                        "8 shared cluster",
                        f"task's module importable on the client and the {where}",
                        _import_case(scratch, on_scheduler, on_worker),
                    )
                )
        finally:
            sys.path.remove(str(scratch / "code"))
            sys.modules.pop(_PROBE_MODULE, None)
    return rows


# --- 9. Pillow costs -----------------------------------------------------------------------------


def _fit(width: int, height: int, box_w: int, box_h: int) -> tuple[int, int]:
    """Fit inside the box, keep the aspect ratio, never upscale, never zero."""
    scale = min(box_w / width, box_h / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _cpu_ms(function: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return _median(times) * 1000


def _decode(data: bytes, scale: int = 1) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    if scale > 1:
        image.draft("RGB", (image.width // scale, image.height // scale))
    image.load()
    return image


def _direct(full: Image.Image) -> list[Image.Image]:
    return [full.resize(_fit(*full.size, w, h), Image.Resampling.LANCZOS) for _, w, h in BOXES]


def _cascade(half: Image.Image, original: tuple[int, int]) -> list[Image.Image]:
    out, current = [], half
    for _, w, h in BOXES:
        current = current.resize(_fit(*original, w, h), Image.Resampling.LANCZOS)
        out.append(current)
    return out


def _psnr(a: Image.Image, b: Image.Image) -> float:
    mse = statistics.fmean(v * v for v in ImageStat.Stat(ImageChops.difference(a, b)).rms)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _encode(image: Image.Image, **options: Any) -> int:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.tell()


def pillow_costs(quick: bool = False, photo: Path | None = None) -> list[Row]:
    path = photo or CORPUS / "photos" / PHOTO
    if not path.is_file():
        return [("9 Pillow", f"photo {path}", "skipped: not found (no corpus beside the repo)")]
    rounds = 2 if quick else 7
    data = path.read_bytes()
    full = _decode(data)
    size = full.size
    rows: list[Row] = [
        (
            "9 Pillow",
            f"full decode, {path.name} {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.1f} MP)",
            f"{_cpu_ms(lambda: _decode(data), rounds):.0f} ms",
        )
    ]
    for scale in (2, 4, 8):
        ms = _cpu_ms(lambda scale=scale: _decode(data, scale), rounds)
        reduced = _decode(data, scale).size
        rows.append(
            ("9 Pillow", f"draft decode 1/{scale} → {reduced[0]}x{reduced[1]}", f"{ms:.0f} ms")
        )
    chosen = []
    for box in ((1920, 1080), (3840, 2160)):
        probe = Image.open(io.BytesIO(data))
        picked = probe.draft("RGB", box)
        chosen.append(f"1/{round(size[0] / picked[1][2])}" if picked else "1/1")
    rows.append(
        (
            "9 Pillow",
            "draft scale picked for the 1920x1080 box / for twice it (thumbnail()'s reducing_gap)",
            " / ".join(chosen),
        )
    )
    half = _decode(data, 2)
    direct_ms = _cpu_ms(lambda: _direct(full), rounds)
    cascade_ms = _cpu_ms(lambda: _cascade(half, size), rounds)
    psnrs = [_psnr(a, b) for a, b in zip(_direct(full), _cascade(half, size), strict=True)]
    rows += [
        ("9 Pillow", "LANCZOS full size → 3 boxes (resize only)", f"{direct_ms:.0f} ms"),
        ("9 Pillow", "LANCZOS cascade from the 1/2 decode (resize only)", f"{cascade_ms:.0f} ms"),
        (
            "9 Pillow",
            "full decode + direct vs 1/2 decode + cascade",
            f"{_cpu_ms(lambda: _direct(_decode(data)), rounds):.0f} ms vs "
            f"{_cpu_ms(lambda: _cascade(_decode(data, 2), size), rounds):.0f} ms",
        ),
        (
            "9 Pillow",
            "PSNR cascade vs direct, large / medium / thumbnail",
            " / ".join(f"{p:.1f} dB" for p in psnrs),
        ),
    ]
    renders = _cascade(half, size)
    for (name, _, _), render in zip(BOXES, renders, strict=True):
        jpeg = _cpu_ms(lambda r=render: _encode(r, format="JPEG", quality=85), rounds)
        webp = _cpu_ms(lambda r=render: _encode(r, format="WEBP", quality=80, method=4), rounds)
        rows.append(
            (
                "9 Pillow",
                f"encode {name} {render.width}x{render.height}: JPEG q85 / WebP q80 m4",
                f"{jpeg:.1f} ms / {webp:.1f} ms",
            )
        )
    medium = renders[1]
    avif = _cpu_ms(lambda: _encode(medium, format="AVIF", quality=60, speed=8), max(2, rounds // 2))
    rows.append(("9 Pillow", "encode medium: AVIF q60 speed 8", f"{avif:.0f} ms"))
    return rows


# --- 10. LocalCluster tuning ---------------------------------------------------------------------


def _image_work(path: str) -> int:
    image = _decode(Path(path).read_bytes(), 2)
    renders = _cascade(image, Image.open(path).size)
    return sum(
        _encode(r, format="JPEG", quality=85) + _encode(r, format="WEBP", quality=80, method=4)
        for r in renders
    )


def _worker_settings(client: Client) -> str:
    env = set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values())
    profile = set(
        client.run(lambda: dask.config.get("distributed.worker.profile.enabled")).values()
    )
    trim, profiler = "/".join(map(str, env)), "/".join(map(str, profile))
    return f"MALLOC_TRIM_THRESHOLD_={trim}, profiler={profiler}"


def tuning(quick: bool = False, photo: Path | None = None) -> list[Row]:
    path = photo or CORPUS / "photos" / PHOTO
    if not path.is_file():
        return [("10 tuning", f"photo {path}", "skipped: not found (no corpus beside the repo)")]
    rounds = 1 if quick else 5
    tasks = 8 if quick else 24
    walls: dict[str, list[float]] = {"defaults": [], "tuned": []}
    settings: dict[str, str] = {}
    for _ in range(rounds):
        for name, config in (("defaults", {}), ("tuned", TUNED)):
            with cluster(config=config) as client:
                settings[name] = _worker_settings(client)
                client.gather(client.map(_image_work, [str(path)] * 2, pure=False))  # warm-up
                start = time.perf_counter()
                client.gather(client.map(_image_work, [str(path)] * tasks, pure=False))
                walls[name].append(time.perf_counter() - start)
    base = _median(walls["defaults"])
    return [
        (
            "10 tuning",
            f"{tasks} photo tasks (1/2 decode, cascade, JPEG+WebP), {name}: {settings[name]}",
            f"{_median(walls[name]):.2f} s"
            + ("" if name == "defaults" else f" ({_median(walls[name]) / base - 1:+.1%})"),
        )
        for name in ("defaults", "tuned")
    ]


FACTS: dict[str, Callable[..., list[Row]]] = {
    "overhead": task_overhead,
    "compute-list": compute_list,
    "keys": keys,
    "chains": chains,
    "cancel": cancel,
    "upstream-cancel": upstream_cancel,
    "rerun": rerun,
    "shared-code": shared_code,
    "pillow": pillow_costs,
    "tuning": tuning,
}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def free_cores(seconds: float = 0.5) -> float:
    """How many cores this shared machine gives us right now: two processes each burn
    ``seconds`` of CPU; 2.0 means both ran side by side, 1.0 that they took turns."""
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        list(pool.map(_spin, [0.05, 0.05]))
        start = time.perf_counter()
        list(pool.map(_spin, [seconds, seconds]))
        return 2 * seconds / (time.perf_counter() - start)


def machine() -> str:
    model = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as stream:
        model = next(
            (line.split(":", 1)[1].strip() for line in stream if line.startswith("model name")),
            model,
        )
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"dask {_version('dask')}, distributed {_version('distributed')}, "
        f"Pillow {PIL.__version__}, "
        f"load average {os.getloadavg()[0]:.2f}, free cores now {free_cores():.2f}"
    )


def table(rows: list[Row]) -> str:
    lines = ["| fact | measured | value |", "| --- | --- | --- |"]
    lines += [f"| {fact} | {what} | {value} |" for fact, what, value in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dask_facts", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller sizes")
    parser.add_argument("--only", choices=list(FACTS), action="append", help="repeatable")
    parser.add_argument("--photo", type=Path, help=f"default: the corpus's {PHOTO}")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    rows: list[Row] = []
    for name in args.only or list(FACTS):
        function = FACTS[name]
        start = time.perf_counter()
        if name in ("pillow", "tuning"):
            found = function(args.quick, args.photo)
        else:
            found = function(args.quick)
        took = time.perf_counter() - start
        print(f"{name}: {took:.0f} s, free cores after: {free_cores():.2f}", file=sys.stderr)
        rows += found
    result = table(rows)
    print(result)
    return result


if __name__ == "__main__":
    main()
