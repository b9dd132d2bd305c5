"""What the ``thumbflow`` command prints, run as a user runs it: JSON a script can read, progress
that suits a log, a rerun that says it reused, refusals in the CLI's own words, a closed pipe.

A few real batches (each a ``thumbflow run`` with its own LocalCluster) serve many assertions;
status, list and watch read them back from a private redis-server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.samples import SampleSet
from tests.commands import THUMBFLOW, command_env
from tests.dask_processes import dask_cluster
from tests.helpers import read_rows


def _environment() -> dict[str, str]:
    """This environment without a progress store: a test gives ``--redis`` when it wants one."""
    return {k: v for k, v in command_env().items() if k != "THUMBFLOW_REDIS_URL"}


def thumbflow(
    *args: str,
    stdout: Any = subprocess.PIPE,
    stderr: Any = subprocess.PIPE,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the command; its output is decoded as it was written (text mode would turn the
    carriage returns of a redrawn bar into newlines, and hide them)."""
    done = subprocess.run(
        [*THUMBFLOW, *args], stdout=stdout, stderr=stderr, timeout=180, env=_environment(), cwd=cwd
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, (done.stdout or b"").decode(), (done.stderr or b"").decode()
    )


COUNTS = ("total", "ok", "reused", "duplicate", "failed", "cancelled", "pending", "processed")


@dataclass(frozen=True)
class Batches:
    """The batches the tests below read: ``first`` processed the sample folder with ``--json``
    (its stderr in a file), ``rerun`` did the folder again in text, ``reused`` only its good
    images (all reused, nothing processed)."""

    redis_url: str
    first: dict[str, Any]
    first_stderr: str
    rerun: subprocess.CompletedProcess[str]
    reused: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def batches(
    samples: SampleSet, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Batches:
    out = tmp_path_factory.mktemp("out")
    log = out.parent / "first-stderr.log"
    common = ["-o", str(out), "--workers", "1", "--redis", redis_url]
    with log.open("w") as stderr:
        first = thumbflow("run", str(samples.folder), *common, "--json", stderr=stderr)
    assert first.returncode == 0, log.read_bytes().decode()
    rerun = thumbflow("run", str(samples.folder), *common, "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    reused = thumbflow("run", *map(str, samples.images), *common, "--no-progress")
    assert reused.returncode == 0, reused.stderr
    return Batches(redis_url, json.loads(first.stdout), log.read_bytes().decode(), rerun, reused)


def _assert_batch_shape(shape: dict[str, Any]) -> None:
    """Numbers are numbers, nested values are objects, never JSON inside a string."""
    for key in COUNTS:
        assert type(shape[key]) is int, (key, shape[key])
    assert isinstance(shape["elapsed_s"], float)
    assert shape["images_per_s"] is None or isinstance(shape["images_per_s"], float)
    assert isinstance(shape["batch_id"], str)
    assert isinstance(shape["state"], str)
    assert all(type(n) is int for n in shape["failures_by_code"].values())
    for step, timing in shape["timings"].items():
        assert type(timing["count"]) is int, step
        assert all(isinstance(timing[k], float | int) for k in ("p50_ms", "p95_ms", "total_s"))


def test_run_json_is_one_object_with_the_summary(batches: Batches, samples: SampleSet) -> None:
    first = batches.first
    _assert_batch_shape(first)
    assert (first["total"], first["ok"], first["duplicate"], first["failed"]) == (11, 8, 1, 2)
    assert (first["reused"], first["processed"], first["state"]) == (0, 10, "done")
    assert first["failures_by_code"] == {"not_an_image": 1, "truncated": 1}
    assert {"hash", "decode", "encode"} <= set(first["timings"])
    assert first["images_per_s"] > 0
    rows = read_rows(first["manifest"])
    assert len(rows) == 11
    assert first["duplicates_of_failed"] == sum(r["status"] == "duplicate_of_failed" for r in rows)
    assert first["images_with_warnings"] == sum(bool(r.get("warnings")) for r in rows)
    assert Path(first["output"]).is_dir()


def test_progress_into_a_log_is_a_few_plain_lines(batches: Batches) -> None:
    log = batches.first_stderr
    assert "\r" not in log  # no bar redrawn into the file
    # the dashboard, and the page of every batch on it (pipeline.dashboard), on the same port
    (dashboard, page) = re.findall(r"(http://127\.0\.0\.1:\d+/)(?:status|thumbflow/batches)", log)
    assert dashboard == page, log
    progress = [
        line for line in log.splitlines() if line.startswith("thumbflow: batch ") and "/11" in line
    ]
    # one every 5 s at most, and the last one says it is done
    assert 1 <= len(progress) <= batches.first["elapsed_s"] / 5 + 2, log
    assert progress[-1].startswith(f"thumbflow: batch {batches.first['batch_id']} done: 11/11")
    assert "Traceback" not in log


def test_a_rerun_says_what_it_reused_and_rates_only_what_it_processed(batches: Batches) -> None:
    summary = batches.rerun.stdout
    assert "ok 8 (8 reused) · duplicate 1 · failed 2" in summary
    assert "images/s" in summary  # the two failures were looked at again
    # the worker's failure message is neutral; the CLI names its own flag
    assert "--accept-truncated" in summary
    everything_reused = batches.reused.stdout
    assert "ok 8 (8 reused)" in everything_reused
    assert "images/s" not in everything_reused, everything_reused


def test_truncated_failures_do_not_name_a_python_keyword(batches: Batches) -> None:
    rows = read_rows(batches.first["manifest"])
    (truncated,) = [row for row in rows if row["failure"] and row["failure"]["code"] == "truncated"]
    assert "accept_truncated" not in truncated["failure"]["message"]


def test_status_and_list_json_are_typed(batches: Batches) -> None:
    batch_id = batches.first["batch_id"]
    status = thumbflow("status", batch_id, "--json", "--redis", batches.redis_url)
    assert status.returncode == 0, status.stderr
    stored = json.loads(status.stdout)
    _assert_batch_shape(stored)
    assert stored["failures_by_code"] == {"not_an_image": 1, "truncated": 1}
    assert stored["timings"].keys() == batches.first["timings"].keys()
    assert (stored["ok"], stored["reused"], stored["manifest"]) == (8, 0, batches.first["manifest"])
    for stamp in ("created_at", "started_at", "finished_at", "heartbeat_at"):
        assert isinstance(stored[stamp], float), stamp
    assert stored["finished_at"] >= stored["created_at"]
    assert (stored["stale"], stored["cancel_requested"]) == (False, False)
    assert type(stored["pid"]) is int

    listing = thumbflow("list", "--json", "--redis", batches.redis_url)
    assert listing.returncode == 0, listing.stderr
    batches_listed = json.loads(listing.stdout)
    assert isinstance(batches_listed, list)
    for shape in batches_listed:
        _assert_batch_shape(shape)
    newest, *_ = batches_listed
    # the last batch reused all its images: no rate, and the store knows how many it reused
    assert (newest["ok"], newest["reused"], newest["processed"]) == (8, 8, 0)
    assert newest["images_per_s"] is None
    assert batch_id in {shape["batch_id"] for shape in batches_listed}


def test_watch_starts_with_the_batch_own_rate(batches: Batches) -> None:
    """A bar that joins a batch late divides what is done by the batch's elapsed time, not by
    the bar's (which once showed thousands of images a second)."""
    watch = thumbflow(
        "watch", batches.first["batch_id"], "--progress", "bar", "--redis", batches.redis_url
    )
    assert watch.returncode == 0, watch.stderr
    rates = [float(rate) for rate in re.findall(r"([\d.]+)img/s", watch.stderr)]
    assert rates, watch.stderr
    assert max(rates) == pytest.approx(batches.first["images_per_s"], rel=0.05, abs=0.02)
    plain = thumbflow(
        "watch", batches.first["batch_id"], "--progress", "plain", "--redis", batches.redis_url
    )
    assert "\r" not in plain.stderr
    assert f"{batches.first['images_per_s']:.1f} images/s" in plain.stderr


def test_a_closed_pipe_ends_quietly(batches: Batches) -> None:
    """``thumbflow list | head -1``: the reader has gone before thumbflow writes."""
    for args in (["list"], ["status", batches.first["batch_id"]]):
        reader, writer = os.pipe()
        os.close(reader)
        try:
            done = thumbflow(*args, "--redis", batches.redis_url, stdout=writer)
        finally:
            os.close(writer)
        assert done.returncode == 141, done.stderr
        assert done.stderr == ""


def test_a_detached_batch_prints_json_and_watch_follows_it(
    samples: SampleSet, redis_url: str, tmp_path: Path
) -> None:
    """``run --detached --json`` describes the batch it left on the cluster in the same shape;
    ``watch`` in a log follows it with plain lines to its end."""
    with dask_cluster(workers=1) as cluster:
        done = thumbflow(
            "run", str(samples.folder), "-o", str(tmp_path / "out"), "--scheduler",
            cluster.address, "--redis", redis_url, "--detached", "--json",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        shape = json.loads(done.stdout)
        _assert_batch_shape(shape)
        assert (shape["total"], shape["output"]) == (11, str(tmp_path / "out"))
        assert shape["state"] in ("queued", "running", "done")
        watch = thumbflow("watch", shape["batch_id"], "--redis", redis_url)
    assert watch.returncode == 0, watch.stderr
    assert "\r" not in watch.stderr
    assert f"thumbflow: batch {shape['batch_id']} done: 11/11" in watch.stderr
    assert "done: ok 8 · duplicate 1 · failed 2" in watch.stdout


# Refusals, each before any cluster starts, in one line naming the flag. A few go through the
# installed command; the rest call its ``main`` in this process (each command costs seconds).
THROUGH_THE_COMMAND = [
    (["run", "{images}", "-o", "{out}", "--workers", "0"], "--workers: '0': must be 1"),
    (["run", "{images}", "-o", "{file}"], "is a file, not a folder"),
    (["run", "{images}", "-o", "{out}", "--redis", "http://u:pw@x"], "http://u:***@x"),
    (["list"], "give --redis URL"),
    (
        ["run", "{images}", "-o", "{out}", "--detached", "--scheduler", "tcp://127.0.0.1:9"],
        "--detached needs --redis URL",
    ),
]
IN_PROCESS = [
    (["run", "{images}", "-o", "{out}", "--max-file-mb", "0"], "--max-file-mb: '0'"),
    (["run", "{images}", "-o", "{out}", "--max-frames", "0"], "--max-frames: '0'"),
    (["run", "{images}", "-o", "{out}", "--max-pixels", "0"], "--max-pixels: '0'"),
    (["run", "{images}", "-o", "{out}", "--max-decoded-pixels", "-1"], "--max-decoded-pixels"),
    (["run", "{images}", "-o", "{out}", "--redis-ttl", "-5"], "--redis-ttl: '-5'"),
    (["run", "{images}", "-o", "{out}", "--webp-method", "7"], "'7': must be 0..6"),
    (["run", "{images}", "-o", "{out}", "--avif-speed", "11"], "--avif-speed: '11'"),
    (["run", "{images}", "-o", "{out}", "--format", "webp:0"], "quality 0: must be 1..100"),
    (["run", "{images}", "-o", "{out}", "--workers", "two"], "'two' is not a whole number"),
    (["run", "{images}", "-o", "file://{file}"], "is a file, not a folder"),
    (["demo", "--count", "0", "-o", "{out}"], "--count: '0'"),
    (["list", "--limit", "0", "--redis", "redis://127.0.0.1:9"], "--limit: '0'"),
    (["status", "x", "--redis", "http://x"], "must start with redis://"),
    (
        ["run", "{images}", "-o", "{out}", "--detached", "--redis", "redis://127.0.0.1:9"],
        "--detached needs --scheduler",
    ),
    (["run", "{images}", "-o", "{out}", "--require-redis"], "--require-redis needs --redis"),
]


def _filled_in(args: list[str], samples: SampleSet, tmp_path: Path) -> list[str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    names = {"images": samples.images[0], "out": tmp_path / "out", "file": a_file}
    return [arg.format(**names) for arg in args]


def _assert_refused(code: int, stderr: str, says: str, tmp_path: Path) -> None:
    assert code == 2, stderr
    assert says in stderr
    assert len(stderr.splitlines()) == 1, stderr
    assert "dashboard" not in stderr  # no cluster was started
    assert not re.search(r"\b(redis_url|require_redis|accept_truncated|detached)=", stderr)
    assert "pw" not in stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "says"), THROUGH_THE_COMMAND)
def test_refusals_through_the_command(
    args: list[str], says: str, samples: SampleSet, tmp_path: Path
) -> None:
    done = thumbflow(*_filled_in(args, samples, tmp_path), cwd=tmp_path)
    _assert_refused(done.returncode, done.stderr, says, tmp_path)


@pytest.mark.parametrize(("args", "says"), IN_PROCESS)
def test_refusals_of_main(
    args: list[str],
    says: str,
    samples: SampleSet,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("THUMBFLOW_REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    code = main(_filled_in(args, samples, tmp_path))
    _assert_refused(code, capsys.readouterr().err, says, tmp_path)
