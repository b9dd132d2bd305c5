"""The notebooks run top to bottom, headless, without a cell error: quickstart on its own
LocalCluster (with and without Redis), remote_cluster against real `dask scheduler` and
`dask worker` processes. The helpers of pipeline.notebook are checked on a real batch first."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import nbformat
import psutil
import pytest
import redis
from distributed import Client
from nbclient import NotebookClient

import pipeline
from pipeline.errors import ConfigError, InputError
from pipeline.notebook import HtmlFragment, gallery, show_progress, timing_chart
from pipeline.notebook.charts import CHAR_PX, FONT_PX
from pipeline.progress.store import batch_key
from pipeline.samples import SampleSet
from tests.commands import DASK, command_env
from tests.helpers import read_rows
from tests.redis_server import free_port

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CELL_TIMEOUT_S = 120
NOTEBOOK_TIMEOUT_S = 240  # the overall bound on one notebook's test, kernel start included
BATCH_ID = re.compile(r"^batch (\d{8}-\d{6}-[0-9a-f]{6})$", re.MULTILINE)
# The executed quickstart with its outputs: ~150 KB, most of it the gallery's embedded previews
# and thumbnails. It was 8.3 MB when the timing chart inlined BokehJS.
SAVED_QUICKSTART_MAX_BYTES = 400_000


# -- pipeline.notebook on a real batch ------------------------------------------------------------


@pytest.fixture(scope="module")
def report(
    samples: SampleSet, cluster_client: Client, tmp_path_factory: pytest.TempPathFactory
) -> pipeline.BatchReport:
    output = tmp_path_factory.mktemp("gallery") / "out"
    return pipeline.run([samples.folder], output, client=cluster_client)


def items(fragment: HtmlFragment) -> list[str]:
    """The data-status of each gallery card, in order."""
    return re.findall(r'class="thumbflow-item" data-status="(\w+)"', fragment.html)


def test_gallery_pairs_every_input_with_its_derivative(report: pipeline.BatchReport) -> None:
    shown = gallery(report)
    assert sorted(items(shown)) == sorted(["ok"] * 8 + ["duplicate", "failed", "failed"])
    # two images per processed input (source, derivative), both embedded
    assert shown.html.count('<img src="data:image/') == 2 * 9
    assert "<code>not_an_image</code>" in shown.html
    assert "notes.jpg: not an image (an HTML page)" in shown.html
    assert "same bytes as " in shown.html
    assert "thumbnail 150&times;" in shown.html
    assert gallery(report.manifest).html == shown.html  # the same, from the manifest's path


def test_gallery_takes_the_first_inputs_in_order_and_the_asked_format(
    report: pipeline.BatchReport,
) -> None:
    shown = gallery(report, limit=3, size="medium", image_format="webp")
    assert re.findall(r"<b>#(\d+)</b>", shown.html) == ["0", "1", "2"]
    derivatives = re.findall(r'<img src="data:(image/\w+);base64,[^"]*" alt="medium"', shown.html)
    assert derivatives == ["image/webp"] * 2  # #1 is notes.jpg, which failed


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda r: gallery(r, size="poster"), ConfigError, "no 'poster' derivatives"),
        (lambda r: gallery(r, limit=0), ConfigError, "limit must be at least 1"),
        (lambda r: gallery(Path(r.manifest).parent), InputError, "not a thumbflow manifest"),
        (
            lambda r: gallery(Path(r.manifest).with_name("nope.jsonl")),
            InputError,
            "appears when the batch ends",
        ),
    ],
)
def test_gallery_errors_say_what_to_do(
    report: pipeline.BatchReport, call: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call(report)


def check_chart(svg: str, report: pipeline.BatchReport) -> None:
    """The timing chart's SVG has a p50 and a p95 bar per step, in order, as long as their
    milliseconds, and labels that can be read: horizontal, one per line, none over another
    nor over the bars."""
    svg_ns = "{http://www.w3.org/2000/svg}"
    root = ElementTree.fromstring(svg)
    for element in root.iter():
        assert "rotate" not in element.get("transform", ""), element.attrib
        assert "writing-mode" not in element.get("style", ""), element.attrib
    bars = [rect for rect in root.iter(f"{svg_ns}rect") if rect.get("class") == "bar"]
    expected = [
        (step, statistic, milliseconds)
        for step, timing in report.timings.items()
        for statistic, milliseconds in (("p50", timing.p50_ms), ("p95", timing.p95_ms))
    ]
    shown = [(bar.get("data-step"), bar.get("data-statistic"), float(bar.get("data-ms", "nan")))
             for bar in bars]  # fmt: skip
    assert shown == [
        (step, statistic, pytest.approx(ms, abs=1e-3)) for step, statistic, ms in expected
    ]
    widths = [float(bar.get("width", "nan")) for bar in bars]
    longest = max(range(len(bars)), key=lambda number: widths[number])
    scale = widths[longest] / shown[longest][2]
    assert widths == [pytest.approx(ms * scale, abs=0.01) for _, _, ms in shown]

    labels = [text for text in root.iter(f"{svg_ns}text") if text.get("class") == "label"]
    assert [text.text for text in labels[::2]] == list(report.timings)  # each step's name
    assert all((text.text or "").endswith(" s in all") for text in labels[1::2])
    baselines = [float(text.get("y", "nan")) for text in labels]
    assert all(below - above >= FONT_PX for above, below in itertools.pairwise(baselines))
    bars_start = min(float(bar.get("x", "nan")) for bar in bars)
    for text in labels:  # right-aligned before the bars, with room for every character
        right = float(text.get("x", "nan"))
        assert text.get("text-anchor") == "end"
        assert len(text.text or "") * CHAR_PX <= right < bars_start


def test_timing_chart_has_p50_and_p95_for_every_step_in_order(
    report: pipeline.BatchReport,
) -> None:
    chart = timing_chart(report)
    check_chart(chart.svg, report)
    assert chart._repr_svg_() == chart.svg
    assert repr(chart).splitlines()[1].split()[0] == next(iter(report.timings))


def test_show_progress_outside_a_notebook_prints_the_final_state(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Counting:
        """A batch that finishes one image per poll."""

        def __init__(self) -> None:
            self.done = 0

        def status(self) -> pipeline.BatchStatus:
            self.done += 1
            state = "done" if self.done == 3 else "running"
            return pipeline.BatchStatus("b", state, 3, self.done, 0, 0, 0, 0.1 * self.done)

    final = show_progress(Counting(), interval=0.01)
    assert final.state == "done"
    assert final.ok == 3
    assert capsys.readouterr().out.splitlines()[-1].startswith("b done: 3 ok, 0 duplicate")


# -- executing the notebooks ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["quickstart.ipynb", "remote_cluster.ipynb"])
def test_notebooks_are_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], cell.id
            assert cell.execution_count is None, cell.id


def kernel_env(**variables: str) -> dict[str, str]:
    """This environment without any THUMBFLOW_ settings of the developer's, plus ``variables``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("THUMBFLOW_")}
    return {**env, **variables}


def execute(name: str, cwd: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Run every cell in a fresh ``python3`` kernel; the first cell error raises
    ``CellExecutionError`` with that cell's traceback, which fails the test."""
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    cwd.mkdir(parents=True, exist_ok=True)
    NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=CELL_TIMEOUT_S,
        startup_timeout=60,
        resources={"metadata": {"path": str(cwd)}},
    ).execute(env=env)
    errors = [
        o for cell in notebook.cells for o in cell.get("outputs", []) if o.output_type == "error"
    ]
    assert errors == []
    return notebook


def outputs(notebook: nbformat.NotebookNode, cell_id: str) -> list[Any]:
    (cell,) = (cell for cell in notebook.cells if cell.id == cell_id)
    return list(cell.outputs)


def html(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in outputs(notebook, cell_id))


def stdout(notebook: nbformat.NotebookNode, cell_id: str) -> str:
    return "".join(o.text for o in outputs(notebook, cell_id) if o.get("name") == "stdout")


def check_quickstart(notebook: nbformat.NotebookNode, cwd: Path) -> tuple[str, str]:
    """The executed quickstart shows what it promises; returns its two batch ids."""
    (first,) = BATCH_ID.findall(stdout(notebook, "submit"))
    (second,) = BATCH_ID.findall(stdout(notebook, "cancel"))
    progress = html(notebook, "submit")
    assert 'class="thumbflow-progress"' in progress
    assert 'data-state="done"' in progress  # the bar's last update is what was saved
    shown = html(notebook, "gallery")
    assert '<img src="data:image/' in shown
    assert 'data-status="duplicate"' in shown
    assert 'data-status="failed"' in shown
    saved = len(nbformat.writes(notebook).encode())
    assert saved < SAVED_QUICKSTART_MAX_BYTES, f"the executed quickstart saves as {saved} bytes"
    (chart,) = [o.data for o in outputs(notebook, "timings") if "data" in o]
    assert set(chart) == {"image/svg+xml", "text/plain"}  # an image: no script to trust
    manifests = cwd / "thumbflow-quickstart" / "derivatives" / "manifests"
    summary = pipeline.BatchReport.from_json(
        json.loads((manifests / f"{first}.summary.json").read_text())
    )
    check_chart(chart["image/svg+xml"], summary)
    assert "Dask dashboard: http" in stdout(notebook, "cluster")
    assert 'data-state="cancelled"' in html(notebook, "cancel")
    # cancel waited for the running tasks, so closing the cluster interrupts none of them
    closing = "".join(o.text for o in outputs(notebook, "close") if o.get("name") == "stderr")
    assert "CancelledError" not in closing

    statuses = [row["status"] for row in read_rows(manifests / f"{second}.jsonl")]
    assert "cancelled" in statuses
    counts = re.search(r"(\d+) ok \+ (\d+) duplicate \+ (\d+) failed \+ (\d+) cancelled = (\d+)",
                       stdout(notebook, "cancel"))  # fmt: skip
    assert counts is not None
    *parts, total = map(int, counts.groups())
    assert sum(parts) == total == len(statuses)
    return first, second


@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
def test_quickstart_runs_headless(tmp_path: Path) -> None:
    notebook = execute("quickstart.ipynb", tmp_path, kernel_env())
    check_quickstart(notebook, tmp_path)
    assert 'data-state="done"' in html(notebook, "status")  # in-process status, no Redis


@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
def test_quickstart_with_redis_records_both_batches(
    tmp_path: Path, redis_url: str, samples: SampleSet
) -> None:
    env = kernel_env(THUMBFLOW_REDIS_URL=redis_url, THUMBFLOW_IMAGES=str(samples.folder))
    notebook = execute("quickstart.ipynb", tmp_path, env)
    first, second = check_quickstart(notebook, tmp_path)
    store = redis.Redis.from_url(redis_url, decode_responses=True)
    assert store.hget(batch_key(first), "state") == "done"
    assert store.hget(batch_key(second), "state") == "cancelled"
    assert store.hget(batch_key(first), "total") == str(len(list(samples.folder.iterdir())))
    assert "Recent batches recorded in Redis" in stdout(notebook, "status")
    listed = html(notebook, "status")
    assert f'data-batch="{first}" data-state="done"' in listed
    assert second not in listed  # the listing ran before the second batch was submitted


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process we started, and whatever it started, by pid: politely, then firmly."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    for child in children:  # a worker process whose nanny died before it could stop it
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@pytest.fixture
def dask_scheduler(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` and one `dask worker` process on loopback, free ports, logs in
    tmp_path; stopped by pid even if the test fails. The worker runs in its own directory, so
    a notebook that passed it relative paths would fail."""
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    started: list[subprocess.Popen[bytes]] = []
    worker_dir = tmp_path / "worker"
    worker_dir.mkdir()
    try:
        with open(tmp_path / "scheduler.log", "wb") as log:
            command = [*DASK, "scheduler", "--host", "127.0.0.1", "--port", port,
                       "--dashboard-address", ":0"]  # fmt: skip
            started.append(
                subprocess.Popen(command, stdout=log, stderr=log, cwd=tmp_path, env=command_env())
            )
        with open(tmp_path / "worker.log", "wb") as log:
            command = [*DASK, "worker", address, "--nworkers", "1", "--nthreads", "1",
                       "--memory-limit", "2GB", "--no-dashboard"]  # fmt: skip
            started.append(
                subprocess.Popen(command, stdout=log, stderr=log, cwd=worker_dir, env=command_env())
            )
        try:
            with Client(address, timeout="30s", set_as_default=False) as client:
                client.wait_for_workers(1, timeout=60)
        except (OSError, TimeoutError) as error:
            logs = {
                name: (tmp_path / name).read_text()[-2000:]
                for name in ("scheduler.log", "worker.log")
            }
            raise RuntimeError(f"the dask cluster did not start: {error}\n{logs}") from error
        yield address
    finally:
        for process in reversed(started):  # the worker first, so it does not wait to reconnect
            stop(process)


@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
def test_remote_cluster_notebook_against_a_real_scheduler(
    tmp_path: Path, dask_scheduler: str
) -> None:
    cwd = tmp_path / "notebook"
    notebook = execute("remote_cluster.ipynb", cwd, kernel_env(THUMBFLOW_SCHEDULER=dask_scheduler))
    connected = stdout(notebook, "connect")
    assert re.search(r"tcp://127\.0\.0\.1:\d+: 1 thread\(s\)", connected), connected
    assert "Dask dashboard: http" in connected
    (batch_id,) = BATCH_ID.findall(stdout(notebook, "run"))
    assert "done: 8 ok, 1 duplicate, 2 failed" in stdout(notebook, "run")
    assert '<img src="data:image/' in html(notebook, "gallery")
    rows = read_rows(cwd / "thumbflow-remote" / "derivatives" / "manifests" / f"{batch_id}.jsonl")
    assert all(Path(row["source"]).is_absolute() for row in rows)
