"""The ``thumbflow`` command through its installed entry point, as a user runs it."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.cli import build_parser, config_from, main
from pipeline.samples import SampleSet
from tests.commands import NEUTRAL_CWD, THUMBFLOW, command_env
from tests.helpers import leftover_temporaries, read_rows


def thumbflow(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*THUMBFLOW, *args], capture_output=True, text=True, timeout=180, cwd=cwd, env=command_env()
    )


def test_run_processes_a_folder_and_prints_a_summary(samples: SampleSet, tmp_path: Path) -> None:
    done = thumbflow("run", str(samples.folder), "-o", str(tmp_path), "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "ok 8 · duplicate 1 · failed 2 · cancelled 0" in done.stdout
    assert "failures by code: not_an_image 1, truncated 1" in done.stdout
    manifest = next(line for line in done.stdout.splitlines() if "manifest:" in line).split()[-1]
    assert len(read_rows(manifest)) == 11
    assert "11/11" in done.stderr  # the progress, as plain lines: stderr is not a terminal
    assert leftover_temporaries(tmp_path) == []


def test_strict_turns_image_failures_into_exit_status_1(samples: SampleSet, tmp_path: Path) -> None:
    broken = [str(path) for path in samples.broken]
    done = thumbflow("run", *broken, "-o", str(tmp_path), "--workers", "1", "--strict")
    assert done.returncode == 1
    assert "failed 2" in done.stdout


def test_sizes_formats_and_quality_are_configurable(samples: SampleSet, tmp_path: Path) -> None:
    code = main(
        [
            "run", str(samples.images[0]), "-o", str(tmp_path), "--workers", "1",
            "--size", "avatar=64x64:cover", "--size", "wide=300x100",
            "--format", "webp:60", "--format", "avif", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    (manifest,) = (tmp_path / "manifests").glob("*.jsonl")
    (row,) = read_rows(manifest)
    sizes = {(o["size"], o["format"]): (o["width"], o["height"]) for o in row["outputs"]}
    assert sizes == {
        ("avatar", "webp"): (64, 64),
        ("avatar", "avif"): (64, 64),
        ("wide", "webp"): (150, 100),
        ("wide", "avif"): (150, 100),
    }


def test_encoder_speed_knobs_reach_every_encoding() -> None:
    args = build_parser().parse_args(
        [
            "run", "in", "-o", "out", "--format", "jpeg", "--format", "webp:70",
            "--webp-method", "2", "--avif-speed", "6", "--jpeg-progressive", "--jpeg-optimize",
        ]
    )  # fmt: skip
    jpeg, webp = config_from(args).encodings
    assert (jpeg.format, jpeg.jpeg_progressive, jpeg.jpeg_optimize) == ("jpeg", True, True)
    assert (webp.format, webp.quality, webp.webp_method, webp.avif_speed) == ("webp", 70, 2, 6)
    defaults = config_from(build_parser().parse_args(["run", "in", "-o", "out"])).encodings
    assert [e.jpeg_progressive or e.jpeg_optimize for e in defaults] == [False, False]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "in", "-o", "out", "--size", "bad"], 2, "expected NAME=WIDTHxHEIGHT"),
        (["run", "in", "-o", "out", "--format", "gif"], 2, "expected jpeg, webp or avif"),
        (["run", "{missing}", "-o", "out"], 3, "does not exist"),
        (["run", "{samples}", "-o", "{blocked}/out"], 3, "not writable"),
        (["run", "{samples}", "-o", "out", "--scheduler", "tcp://127.0.0.1:9"], 3, "cannot reach"),
        (["run", "{samples}", "-o", "out", "--scheduler", "foo://127.0.0.1:9"], 3, "scheme 'foo'"),
        # something listens there, so that only the missing certificates stop it
        (["run", "{samples}", "-o", "out", "--scheduler", "tls://{listening}"], 3, "needs TLS"),
    ],
)
def test_usage_and_infrastructure_errors_exit_with_a_clear_message(
    args: list[str], code: int, message: str, samples: SampleSet, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file, not a folder")
    with socket.create_server(("127.0.0.1", 0)) as listening:
        names = {
            "missing": tmp_path / "missing", "samples": samples.folder, "blocked": blocked,
            "listening": f"127.0.0.1:{listening.getsockname()[1]}",
        }  # fmt: skip
        args = [arg.format(**names) for arg in args]
        started = time.monotonic()
        done = thumbflow(*args, cwd=tmp_path)
        took = time.monotonic() - started
    assert done.returncode == code, done.stderr
    assert message in done.stderr
    # the message, and nothing after it: no half-made Dask client closing itself for 20 s
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert took < 10, f"{took:.1f} s"


# Dask's own messages that used to reach a user's terminal around a successful run.
DASK_NOISE = (
    "already in use", "Perhaps you already have a cluster", "Hosting the HTTP server",
    "still alive after", "killing", "heartbeat", "CommClosedError", "Traceback",
    "Exception ignored", "distributed.", "WARNING", "ERROR",
)  # fmt: skip


def test_a_run_shows_its_dashboard_link_once_and_no_dask_noise(
    samples: SampleSet, tmp_path: Path
) -> None:
    """Port 8787 taken (another cluster's dashboard), stderr to a file as in CI: the batch runs
    with its dashboard on a free port, named once, and Dask's chatter stays out of the log."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        with contextlib.suppress(OSError):  # if someone else holds it, it is taken all the same
            taken.bind(("127.0.0.1", 8787))
            taken.listen()
        log = tmp_path / "stderr.txt"
        with log.open("w") as stderr:
            done = subprocess.run(
                [*THUMBFLOW, "run", str(samples.folder), "-o", str(tmp_path / "out"),
                 "--workers", "2", "--no-progress"],
                stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=180, env=command_env(),
            )  # fmt: skip
    text = log.read_text()
    assert done.returncode == 0, text
    links = re.findall(r"http://127\.0\.0\.1:(\d+)/status", text)
    assert len(links) == 1, text
    assert links[0] != "8787"
    assert [noise for noise in DASK_NOISE if noise in text] == [], text
    assert len(text.splitlines()) <= 3, text


def test_demo_makes_samples_and_processes_them(tmp_path: Path) -> None:
    done = thumbflow("demo", "--count", "2", "--workers", "1", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ok 4 · duplicate 1 · failed 2" in done.stdout
    assert (tmp_path / "thumbflow-demo" / "samples").is_dir()
    assert list((tmp_path / "thumbflow-demo" / "derivatives").rglob("large-*.webp"))


# Dask's own handler (set up when distributed is imported) is what writes to the terminal.
DASK_CHATTER = """
import logging, sys
import distributed
from pipeline.dask_logs import show_dask_logs
show_dask_logs(int(sys.argv[1]))
logging.getLogger("distributed.client").error("a reconnect failed")  # a logger with its own level
logging.getLogger("distributed.nanny").warning("still alive after 4 s, killing")
"""


@pytest.mark.parametrize(("verbosity", "shown"), [(0, []), (1, ["reconnect", "still alive"])])
def test_dask_logs_reach_the_terminal_only_with_verbose(verbosity: int, shown: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DASK_CHATTER, str(verbosity)],
        capture_output=True, text=True, timeout=60, env=command_env(), cwd=NEUTRAL_CWD,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [word for word in ("reconnect", "still alive") if word in done.stderr] == shown
