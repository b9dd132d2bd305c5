"""URL lists as input, end to end: a CSV and a Parquet list of URLs on a local web server that
misbehaves in every way the README lists, one real batch on the session's LocalCluster, and the
CLI once through its entry point. The lists' parsing rules are checked without a cluster."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from distributed import Client

import pipeline
from pipeline import FetchSettings, PipelineConfig
from pipeline.errors import ConfigError, InputError
from pipeline.inputs import expand_inputs
from pipeline.samples import photo_like
from pipeline.url_lists import UrlListColumns
from pipeline.worker.fetched import remove_batch_spool, spool_folder
from pipeline.worker.tasks import hash_chunk
from tests.commands import NEUTRAL_CWD, THUMBFLOW, command_env
from tests.helpers import manifest_counts, read_rows
from tests.http_server import TEN_GB, WebServer, serving

TIMEOUT_S = 1.5
RETRY_AFTER_CAP_S = 0.4  # the server asks for 1 s; the batch waits at most this
LIMIT = 4 * 1024 * 1024
FETCH = FetchSettings(
    timeout_s=TIMEOUT_S,
    deadline_s=30,
    retries=2,
    backoff_s=0.05,
    retry_after_max_s=RETRY_AFTER_CAP_S,
)
PHOTO = "samsung_sm_j327t1.jpg"  # 0.9 MB, under LIMIT


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo_like(480, 320, seed=seed).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[WebServer]:
    with serving() as running:
        yield running


# (path on the server, status, failure code); "" and ftp:// are rows with no URL to fetch
CASES: list[tuple[str, str, str | None]] = [
    ("/file/photo.jpg", "ok", None),
    ("/file/small.jpg", "ok", None),
    ("/file/copy.jpg", "duplicate", None),  # the same bytes as small.jpg, another URL
    ("/status-code/404", "failed", "http_error"),
    ("/status-code/500", "failed", "http_error"),
    ("/busy-once/busy.jpg", "ok", None),
    ("/slow/slow.jpg", "ok", None),
    ("/stalled/stalled.jpg", "failed", "timeout"),
    ("/redirect/moved.jpg", "ok", None),
    ("/loop/a", "failed", "too_many_redirects"),
    ("/lying/short.jpg", "failed", "incomplete_download"),
    ("/huge/declared", "failed", "too_large"),
    ("/huge/undeclared", "failed", "too_large"),
    ("CLOSED", "failed", "unreachable"),
    ("", "failed", "bad_url"),
    ("ftp://example.com/a.jpg", "failed", "bad_url"),
    ("/file/notes.txt", "failed", "not_an_image"),
]


def _url(server: WebServer, path: str, closed_port: int) -> str:
    if path == "CLOSED":
        return f"http://127.0.0.1:{closed_port}/nobody.jpg"
    return server.url(path) if path.startswith("/") else path


@pytest.fixture(scope="module")
def url_batch(
    server: WebServer,
    corpus: Path,
    cluster_client: Client,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    small = _jpeg(1)
    server.files.update(
        {
            "photo.jpg": (corpus / "photos" / PHOTO).read_bytes(),
            "small.jpg": small,
            "copy.jpg": small,
            "busy.jpg": _jpeg(2),
            "slow.jpg": _jpeg(3),
            "stalled.jpg": _jpeg(4),
            "moved.jpg": _jpeg(5),
            "short.jpg": _jpeg(6),
            "notes.txt": b"shopping list: bread, milk\n",
            "parquet.jpg": _jpeg(7),
        }
    )
    folder = tmp_path_factory.mktemp("url-list")
    closed = _closed_port()
    urls = [_url(server, path, closed) for path, _, _ in CASES]
    listing = folder / "urls.csv"
    with listing.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_url", "caption", "id", "ignored"])
        for number, url in enumerate(urls):
            writer.writerow([url, f"caption, {number}", f"id-{number}", "not carried"])
    # Two more rows from a Parquet list: one new image, one more copy of small.jpg
    table = pa.table(
        {
            "image_url": [server.url("/file/parquet.jpg"), server.url("/file/small.jpg")],
            "caption": ["from parquet", None],
            "id": [100, 101],
        }
    )
    pq.write_table(table, folder / "more.parquet")
    output = folder / "out"
    config = PipelineConfig(fetch=FETCH, max_file_bytes=LIMIT)
    started = time.monotonic()
    report = pipeline.run(
        [listing, folder / "more.parquet"],
        output,
        client=cluster_client,
        config=config,
        url_column="image_url",
        keep_columns=["caption", "id"],
    )
    return {
        "report": report,
        "rows": sorted(read_rows(report.manifest), key=lambda row: row["index"]),
        "urls": urls,
        "wall_s": time.monotonic() - started,
        "small": small,
    }


def test_every_row_gets_its_status_and_code(url_batch: dict[str, Any]) -> None:
    rows = url_batch["rows"]
    assert [row["index"] for row in rows] == list(range(len(CASES) + 2))
    assert [row["source"] for row in rows[: len(CASES)]] == url_batch["urls"]
    outcome = [(row["status"], (row["failure"] or {}).get("code")) for row in rows[: len(CASES)]]
    assert outcome == [(status, code) for _, status, code in CASES]
    assert [row["status"] for row in rows[len(CASES) :]] == ["ok", "duplicate"]
    by_path = {path: row for (path, _, _), row in zip(CASES, rows, strict=False)}
    assert "HTTP 404" in by_path["/status-code/404"]["failure"]["message"]
    assert "HTTP 500" in by_path["/status-code/500"]["failure"]["message"]
    assert "row 15" in by_path[""]["failure"]["message"]  # where in the list, for people
    for path in ("/file/photo.jpg", "/busy-once/busy.jpg", "/redirect/moved.jpg"):
        assert len(by_path[path]["outputs"]) == 6, path


def test_bytes_are_hashed_as_fetched_and_dedup_spans_urls(
    url_batch: dict[str, Any], server: WebServer
) -> None:
    rows = url_batch["rows"]
    photo_digest = hashlib.sha256(server.files["photo.jpg"]).hexdigest()
    assert rows[0]["sha256"] == photo_digest
    small = hashlib.sha256(url_batch["small"]).hexdigest()
    assert rows[1]["sha256"] == rows[2]["sha256"] == small
    assert rows[2]["duplicate_of"] == rows[1]["source"]
    assert rows[-1]["duplicate_of"] == rows[1]["source"]  # from the Parquet list
    # the bytes fetched for the hash are the ones decoded: small.jpg was served once per URL
    assert server.hits["/file/small.jpg"] == 2
    assert server.hits["/file/photo.jpg"] == 1


def test_columns_travel_to_each_row(url_batch: dict[str, Any]) -> None:
    rows = url_batch["rows"]
    for number, row in enumerate(rows[: len(CASES)]):
        assert row["columns"] == {"caption": f"caption, {number}", "id": f"id-{number}"}
    assert rows[-2]["columns"] == {"caption": "from parquet", "id": 100}
    assert rows[-1]["columns"] == {"caption": None, "id": 101}


def test_counts_agree_and_nothing_is_left_behind(url_batch: dict[str, Any]) -> None:
    report = url_batch["report"]
    counts = manifest_counts(report.manifest)
    assert counts == {"ok": 6, "duplicate": 2, "failed": 11, "cancelled": 0}
    status = report.status
    assert (status.ok, status.duplicate, status.failed, status.cancelled) == tuple(counts.values())
    assert report.failures_by_code == {
        "http_error": 2,
        "timeout": 1,
        "too_many_redirects": 1,
        "incomplete_download": 1,
        "too_large": 2,
        "unreachable": 1,
        "bad_url": 2,
        "not_an_image": 1,
    }
    batch_id = Path(report.manifest).stem
    assert not os.path.exists(spool_folder(batch_id))  # fetched bytes gone from the workers


def test_transient_errors_are_retried_with_backoff_and_retry_after(
    url_batch: dict[str, Any], server: WebServer
) -> None:
    assert server.hits["/status-code/404"] == 1  # a 404 is final
    assert server.hits["/status-code/500"] == 1 + FETCH.retries
    assert server.hits["/lying/short.jpg"] == 1 + FETCH.retries
    first, second = server.hit_times["/busy-once/busy.jpg"]
    # the server asked for 1 s; the wait is the cap, not the 50 ms backoff, nor the full second
    assert RETRY_AFTER_CAP_S - 0.05 <= second - first < 1.0


def test_nothing_hangs_or_reads_past_the_limit(
    url_batch: dict[str, Any], server: WebServer
) -> None:
    stalled = url_batch["rows"][7]
    assert TIMEOUT_S - 0.1 <= stalled["timings_ms"]["hash"] / 1000 < TIMEOUT_S + 1.5
    assert url_batch["wall_s"] < 45
    # an endless body is dropped at the limit: what the server got out is the limit plus what
    # the sockets' buffers took, never the 10 GB it offers
    for path in ("/huge/declared", "/huge/undeclared"):
        assert server.sent[path] < LIMIT + 16 * 1024 * 1024 < TEN_GB, path
    assert "announces 10,737,418,240 bytes" in url_batch["rows"][11]["failure"]["message"]


def test_what_is_a_url_list_and_how_it_is_read(tmp_path: Path) -> None:
    text = tmp_path / "urls.txt"
    text.write_text("# photos\nhttp://a.example/1.jpg\n\n  https://b.example/2.jpg  \nnot a url\n")
    rows = expand_inputs([text])
    assert [row.source for row in rows] == [
        "http://a.example/1.jpg",
        "https://b.example/2.jpg",
        "not a url",
    ]
    assert [row.refusal is None for row in rows] == [True, True, False]
    assert rows[2].refusal is not None
    assert "urls.txt line 5" in rows[2].refusal.message
    tsv = tmp_path / "urls.tsv"
    tsv.write_text("link\tid\nhttp://a.example/1.jpg\t7\nhttp://a.example/1.jpg\t8\n")
    rows = expand_inputs([tsv], url_columns=UrlListColumns("link", ("id",)))
    assert [(row.source, row.columns) for row in rows] == [
        ("http://a.example/1.jpg", {"id": "7"}),
        ("http://a.example/1.jpg", {"id": "8"}),  # a repeated URL is still its own row
    ]
    with pytest.raises(InputError, match=r"no column 'url' \(its columns: 'link', 'id'\)"):
        expand_inputs([tsv])
    with pytest.raises(ConfigError, match="no columns to keep"):
        expand_inputs([text], url_columns=UrlListColumns(keep_columns=("id",)))
    # found in a folder, a .txt is just a file (and fails as not an image), not a list
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("http://a.example/1.jpg\n")
    assert [row.source for row in expand_inputs([folder])] == [str(folder / "notes.txt")]


def test_cli_runs_a_csv_url_list(server: WebServer, tmp_path: Path) -> None:
    server.files["cli.jpg"] = _jpeg(11)
    listing = tmp_path / "urls.csv"
    listing.write_text(
        "caption,link\n"
        f"a cat,{server.url('/file/cli.jpg')}\n"
        f"gone,{server.url('/status-code/404')}\n"
        "empty,\n"
    )
    output = tmp_path / "out"
    done = subprocess.run(
        [*THUMBFLOW, "run", str(listing), "-o", str(output), "--url-column", "link",
         "--keep-column", "caption", "--fetch-timeout", "2", "--fetch-retries", "0",
         "--workers", "1", "--json", "--no-progress"],
        capture_output=True, text=True, timeout=180, cwd=NEUTRAL_CWD, env=command_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["ok"], summary["failed"]) == (1, 2)
    assert summary["failures_by_code"] == {"http_error": 1, "bad_url": 1}
    rows = sorted(read_rows(summary["manifest"]), key=lambda row: row["index"])
    assert [(row["status"], row["columns"]) for row in rows] == [
        ("ok", {"caption": "a cat"}),
        ("failed", {"caption": "gone"}),
        ("failed", {"caption": "empty"}),
    ]


def test_a_chunk_fetches_its_urls_at_once() -> None:
    """Eight URLs behind 0.3 s of latency each hash in about one round trip, not eight."""
    with serving() as slow:
        slow.latency_s = 0.3
        for number in range(8):
            slow.files[f"{number}.jpg"] = _jpeg(20 + number)
        items = [(number, slow.url(f"/file/{number}.jpg")) for number in range(8)]
        started = time.monotonic()
        try:
            hashed = hash_chunk(items, PipelineConfig(fetch=FETCH))
        finally:
            remove_batch_spool("no-batch")  # outside Dask, the stage spools under this name
        elapsed = time.monotonic() - started
    assert [work.sha256 for work in hashed] == [
        hashlib.sha256(slow.files[f"{number}.jpg"]).hexdigest() for number in range(8)
    ]
    assert elapsed < 8 * 0.3 / 2


def test_cancel_does_not_wait_for_every_stalled_url(
    server: WebServer, cluster_client: Client, tmp_path: Path
) -> None:
    """Twenty stalled URLs, two fetched at a time per chunk of five: a cancelled chunk starts no
    new fetch, so cancel waits for one timeout, not for each URL's in turn."""
    server.files["stall.jpg"] = _jpeg(30)
    listing = tmp_path / "stalled.txt"
    listing.write_text("".join(server.url(f"/stalled/stall.jpg?{n}") + "\n" for n in range(20)))
    fetch = FetchSettings(timeout_s=4, retries=0, concurrency=2)
    handle = pipeline.submit(
        [listing], tmp_path / "out", client=cluster_client, config=PipelineConfig(fetch=fetch)
    )
    time.sleep(1)
    started = time.monotonic()
    status = handle.cancel(timeout=60)
    assert time.monotonic() - started < 4 + 3
    assert status.state == "cancelled"
    assert status.cancelled + status.failed == 20
    assert not os.path.exists(spool_folder(handle.batch_id))
