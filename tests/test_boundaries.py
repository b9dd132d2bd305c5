"""What a batch touches stays inside: writes in the output root (a symbolic link planted inside
it that leads elsewhere never carries a manifest, a summary or a derivative out; links that stay
inside are fine), and the LocalCluster we start listens on loopback only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from distributed import Client

import pipeline
from pipeline.errors import OutputError
from pipeline.samples import photo_like
from pipeline.storage import OutputRoot
from tests.commands import NEUTRAL_CWD, command_env
from tests.helpers import read_rows


@pytest.fixture
def images(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    paths = [folder / f"{n}.jpg" for n in range(2)]
    for seed, path in enumerate(paths):
        photo_like(96, 64, seed=seed).save(path, quality=80)
    return paths


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    return folder


def everything_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


def derivative_folder(image: Path, client: Client, scratch: Path) -> Path:
    """Where the image's derivatives go, relative to the root, learnt from a real run (so the
    test follows the layout, whatever it is)."""
    report = pipeline.run([image], scratch, client=client)
    return Path(read_rows(report.manifest)[0]["outputs"][0]["path"]).parent


# -- OutputRoot on its own -------------------------------------------------------------------------


def test_no_write_goes_through_a_link_that_leads_out(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "ab").symlink_to(elsewhere, target_is_directory=True)
    root = OutputRoot(str(out))
    with pytest.raises(OutputError, match="'ab' is a symbolic link") as refused:
        root.write_atomic("ab/abc/thumbnail.jpg", b"data")
    assert isinstance(refused.value, OSError)  # so a worker reports it as the image's write_error
    with pytest.raises(OutputError, match="outside the output root"):
        root.open_text_for_writing("ab/rows.jsonl.partial")
    (out / "mine.txt").write_text("x")
    with pytest.raises(OutputError, match="'ab' is a symbolic link"):
        root.rename("mine.txt", "ab/mine.txt")
    assert everything_under(elsewhere) == []
    assert (out / "mine.txt").exists()


def test_a_link_to_a_file_outside_is_not_written_through(tmp_path: Path, elsewhere: Path) -> None:
    out = tmp_path / "out"
    (out / "manifests").mkdir(parents=True)
    private = elsewhere / "private.txt"
    private.write_text("mine")
    (out / "manifests" / "x.jsonl.partial").symlink_to(private)
    with pytest.raises(OutputError, match="symbolic link"):
        OutputRoot(str(out)).open_text_for_writing("manifests/x.jsonl.partial")
    assert private.read_text() == "mine"


def test_links_that_stay_inside_the_root_are_followed(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "real").mkdir(parents=True)
    (out / "ab").symlink_to(out / "real", target_is_directory=True)
    outer = tmp_path / "outer-link"
    outer.symlink_to(out, target_is_directory=True)  # the root itself may be a link
    root = OutputRoot(str(outer))
    root.write_atomic("ab/abc/thumbnail.jpg", b"data")
    with root.open_text_for_writing("ab/rows.partial") as stream:
        stream.write("row\n")
    root.rename("ab/rows.partial", "ab/rows")
    assert (out / "real" / "abc" / "thumbnail.jpg").read_bytes() == b"data"
    assert (out / "real" / "rows").read_text() == "row\n"


# -- a real batch --------------------------------------------------------------------------------


def test_a_planted_manifests_link_stops_the_batch_with_the_reason(
    cluster_client: Client, images: list[Path], elsewhere: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifests").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(OutputError, match="'manifests' is a symbolic link") as refused:
        pipeline.run(images, out, client=cluster_client)
    assert str(elsewhere) in str(refused.value)
    assert everything_under(elsewhere) == []


@pytest.mark.parametrize("planted", ["fan-out folder", "image folder"])
def test_a_planted_image_folder_link_fails_that_image_only(
    planted: str,
    cluster_client: Client,
    images: list[Path],
    elsewhere: Path,
    tmp_path: Path,
) -> None:
    folder = derivative_folder(images[0], cluster_client, tmp_path / "scratch")
    link = folder.parts[0] if planted == "fan-out folder" else str(folder)
    out = tmp_path / "out"
    (out / link).parent.mkdir(parents=True, exist_ok=True)
    (out / link).symlink_to(elsewhere, target_is_directory=True)

    report = pipeline.run(images, out, client=cluster_client)

    assert everything_under(elsewhere) == []
    rows = {Path(row["source"]).name: row for row in read_rows(report.manifest)}
    failed = rows[images[0].name]
    assert failed["status"] == "failed"
    assert failed["failure"]["code"] == "write_error"
    assert f"'{link}' is a symbolic link" in failed["failure"]["message"]
    assert rows[images[1].name]["status"] == "ok"
    assert os.path.islink(out / link)  # left as it was: the user decides what to do with it


# -- the LocalCluster we start -------------------------------------------------------------------

# Run in a process of its own, so that the sockets found are this cluster's and no other's.
LISTENING_SOCKETS = """
import json, psutil
from pipeline.cluster import start_local_cluster
if __name__ == "__main__":
    connection = start_local_cluster(workers=1)
    try:
        me = psutil.Process()
        found = [
            (process.pid, socket.laddr.ip, socket.laddr.port)
            for process in (me, *me.children(recursive=True))
            for socket in process.net_connections(kind="inet")
            if socket.status == psutil.CONN_LISTEN
        ]
        print(json.dumps({"link": connection.dashboard_link, "listening": found}), flush=True)
        input()  # the test fetches the dashboard meanwhile
    finally:
        connection.close()
"""


def test_the_local_cluster_listens_on_loopback_only() -> None:
    probe = subprocess.Popen(
        [sys.executable, "-c", LISTENING_SOCKETS],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=command_env(), cwd=NEUTRAL_CWD,
    )  # fmt: skip
    try:
        assert probe.stdout is not None
        assert probe.stdin is not None
        found = json.loads(probe.stdout.readline())
        with urllib.request.urlopen(found["link"], timeout=30) as page:
            assert page.status == 200  # the printed link works
        probe.stdin.write("\n")
        probe.stdin.flush()
        assert probe.wait(timeout=60) == 0
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()
    pids = {pid for pid, _, _ in found["listening"]}
    assert len(pids) >= 2  # the scheduler's process and a worker's: not an empty check
    dashboard_port = int(found["link"].split(":")[2].split("/")[0])
    assert dashboard_port in {port for _, _, port in found["listening"]}
    exposed = [entry for entry in found["listening"] if entry[1] not in ("127.0.0.1", "::1")]
    assert not exposed, f"listening beyond loopback: {exposed}"
