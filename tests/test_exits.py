"""Every exit is final: signals, remote cancels and interpreter exit each leave a finished
manifest with a row per input, a summary, a final state in Redis and an exit code a script can
act on. The CLI and the scripts run as real processes on a real LocalCluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

import pipeline
from pipeline.cli import EXIT_CANCELLED, EXIT_INTERRUPTED, EXIT_TERMINATED
from pipeline.samples import SampleSet
from tests.commands import THUMBFLOW, command_env
from tests.helpers import leftover_temporaries, read_rows, stored, wait_until


def _start_cli(
    *args: str, workdir: Path, ignore_sigint: bool = False, new_group: bool = False
) -> tuple[subprocess.Popen[bytes], Path]:
    """``thumbflow run`` through this interpreter; stderr to a file, as CI and cron see it."""
    stderr = workdir / f"stderr-{uuid.uuid4().hex[:6]}.txt"

    def inherit_ignored_sigint() -> None:  # what a non-interactive shell does for `cmd &`
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    process = subprocess.Popen(
        [*THUMBFLOW, "run", *args, "--no-progress"],
        env=command_env(),
        stdout=subprocess.DEVNULL,
        stderr=stderr.open("wb"),
        preexec_fn=inherit_ignored_sigint if ignore_sigint else None,
        start_new_session=new_group,
    )
    return process, stderr


def _batch_id(stderr: Path) -> str:
    def announced() -> bool:
        return "thumbflow: batch " in stderr.read_text()

    wait_until(announced, timeout=120)
    line = next(line for line in stderr.read_text().splitlines() if "thumbflow: batch " in line)
    return line.split("thumbflow: batch ", 1)[1].split(",", 1)[0]


def _wait_for_first_row(output: Path, batch_id: str) -> None:
    partial = output / "manifests" / f"{batch_id}.jsonl.partial"
    wait_until(lambda: partial.exists() and partial.read_text().count("\n") >= 1, timeout=120)


def _assert_final(output: Path, batch_id: str, total: int, redis_url: str | None = None) -> None:
    rows = read_rows(output / "manifests" / f"{batch_id}.jsonl")
    assert sorted(row["index"] for row in rows) == list(range(total))
    summary = json.loads((output / "manifests" / f"{batch_id}.summary.json").read_text())
    assert summary["state"] == "cancelled"
    statuses = [row["status"] for row in rows]
    assert summary["ok"] == statuses.count("ok")
    assert summary["cancelled"] == statuses.count("cancelled") > 0
    assert not list(output.glob("manifests/*.partial"))
    assert leftover_temporaries(output) == []
    if redis_url is not None:
        record = stored(redis_url, batch_id)
        assert record["state"] == "cancelled"
        assert int(record["cancelled"]) == summary["cancelled"]


def test_sigterm_cancels_cleanly_and_exits_143(many: Path, tmp_path: Path, redis_url: str) -> None:
    output = tmp_path / "out"
    process, stderr = _start_cli(
        str(many), "-o", str(output), "--redis", redis_url, workdir=tmp_path
    )
    batch_id = _batch_id(stderr)
    _wait_for_first_row(output, batch_id)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == EXIT_TERMINATED == 143
    _assert_final(output, batch_id, total=40, redis_url=redis_url)
    assert "terminated (SIGTERM), cancelling the batch" in stderr.read_text()


@pytest.mark.parametrize(
    "how",
    ["ctrl-c to the process group", "kill -INT to a background job"],
)
def test_sigint_cancels_cleanly_with_one_message(many: Path, tmp_path: Path, how: str) -> None:
    output = tmp_path / "out"
    background = how.startswith("kill")
    process, stderr = _start_cli(
        str(many), "-o", str(output), workdir=tmp_path,
        ignore_sigint=background, new_group=not background,
    )  # fmt: skip
    batch_id = _batch_id(stderr)
    _wait_for_first_row(output, batch_id)
    if background:
        process.send_signal(signal.SIGINT)
    else:  # the terminal sends Ctrl-C to every process of the foreground group, workers too
        os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == EXIT_INTERRUPTED == 130
    _assert_final(output, batch_id, total=40)
    log = stderr.read_text()
    assert "interrupted, cancelling the batch" in log
    assert "Traceback" not in log
    assert "KeyboardInterrupt" not in log


def test_a_batch_cancelled_from_elsewhere_fails_a_strict_run(
    many: Path, tmp_path: Path, redis_url: str
) -> None:
    """`thumbflow run --strict … && publish` must not publish a batch that someone cancelled."""
    output = tmp_path / "out"
    process, stderr = _start_cli(
        str(many), "-o", str(output), "--redis", redis_url, "--strict", workdir=tmp_path
    )
    batch_id = _batch_id(stderr)
    _wait_for_first_row(output, batch_id)
    pipeline.cancel(batch_id, redis_url=redis_url)
    assert process.wait(timeout=60) == EXIT_CANCELLED == 4
    _assert_final(output, batch_id, total=40, redis_url=redis_url)


_SCRIPT = """
import json, sys
import pipeline

if __name__ == "__main__":
    small, many, output = sys.argv[1:4]
    first = pipeline.submit([small], output + "/0")
    first_ok = first.result().status.ok
    a = pipeline.submit([many], output + "/a")
    b = pipeline.submit([many], output + "/b")
    print(json.dumps({
        "links": [first.dashboard_link, a.dashboard_link, b.dashboard_link],
        "ids": [a.batch_id, b.batch_id],
        "first_ok": first_ok,
    }))
"""


def test_submits_without_a_client_share_one_cluster_that_closes_cleanly_at_exit(
    samples: SampleSet, many: Path, tmp_path: Path
) -> None:
    """One LocalCluster per process, reused; at exit the batches still running are cancelled
    and settle (no "cannot schedule new futures after shutdown" failures), then it closes."""
    psutil = pytest.importorskip("psutil")
    script = tmp_path / "two_submits.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    marker = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, str(script), str(samples.folder), str(many), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=240,
        env=command_env({"THUMBFLOW_TEST_MARKER": marker}),
    )
    assert done.returncode == 0, done.stderr
    told = json.loads(done.stdout.strip().splitlines()[-1])
    assert told["first_ok"] == len(samples.images)
    assert len(set(told["links"])) == 1, "each submit started a cluster of its own"
    for letter, batch_id in zip("ab", told["ids"], strict=True):
        output = tmp_path / "out" / letter
        rows = read_rows(output / "manifests" / f"{batch_id}.jsonl")
        assert sorted(row["index"] for row in rows) == list(range(40))
        assert all(row["status"] in ("ok", "cancelled") for row in rows), [
            row["failure"] for row in rows if row["failure"]
        ]
        summary = json.loads((output / "manifests" / f"{batch_id}.summary.json").read_text())
        assert summary["state"] in ("done", "cancelled")
        assert leftover_temporaries(output) == []
    assert "cannot schedule new futures" not in done.stderr

    def left_behind() -> list[int]:
        found = []
        for process in psutil.process_iter(["pid"]):
            try:
                if process.environ().get("THUMBFLOW_TEST_MARKER") == marker:
                    found.append(process.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    deadline = time.monotonic() + 15
    while left_behind() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert left_behind() == [], "worker processes outlived the script"
