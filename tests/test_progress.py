"""Progress in a real Redis: exact counts, status/watch/list/cancel from other processes,
Redis outages, worker deaths and Ctrl-C."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis
from distributed import Client, LocalCluster, get_task_stream

import pipeline
from pipeline.cli import EXIT_DRIVER_GONE
from pipeline.config import Encoding, PipelineConfig, Size
from pipeline.errors import Failure
from pipeline.progress.publisher import RedisProgress
from pipeline.progress.store import RedisStore, batch_key, events_key, images_key
from pipeline.results import ImageResult
from pipeline.samples import SampleSet, photo_like
from tests.commands import THUMBFLOW, command_env
from tests.helpers import (
    COUNTERS,
    assert_exact_after_a_kill,
    cli_batch_id,
    leftover_temporaries,
    manifest_counts,
    read_rows,
    redis_counts,
    run_killing_a_worker,
    stored,
    wait_until,
)
from tests.redis_server import RedisServer
from tests.test_cli import thumbflow


def test_counts_in_redis_match_the_manifest_exactly(
    samples: SampleSet, cluster_client: Client, redis_url: str, tmp_path: Path
) -> None:
    report = pipeline.run([samples.folder], tmp_path, client=cluster_client, redis_url=redis_url)
    batch_id = report.status.batch_id
    expected = {"ok": 8, "duplicate": 1, "failed": 2, "cancelled": 0}
    assert manifest_counts(report.manifest) == expected
    assert redis_counts(redis_url, batch_id) == expected
    fields = stored(redis_url, batch_id)
    assert fields["state"] == "done"
    assert int(fields["total"]) == 11
    assert json.loads(fields["failures_by_code"]) == {"not_an_image": 1, "truncated": 1}
    assert set(json.loads(fields["timings"])) >= {"hash", "decode", "resize", "encode", "write"}
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    images = client.hgetall(images_key(batch_id))
    assert sorted(int(index) for index in images) == list(range(11))
    assert {json.loads(value)["status"] for value in images.values()} == set(expected) - {
        "cancelled"
    }
    events = client.xrange(events_key(batch_id))
    assert sum("index" in event for _, event in events) == 11
    assert [event["state"] for _, event in events if "state" in event][-1] == "done"


def test_keys_expire_after_the_batch_and_hold_no_pickles(
    samples: SampleSet, cluster_client: Client, redis_url: str, tmp_path: Path
) -> None:
    report = pipeline.run(
        samples.images[:2], tmp_path, client=cluster_client, redis_url=redis_url, redis_ttl_s=600
    )
    raw = redis.Redis.from_url(redis_url)  # bytes, exactly as stored
    batch_id = report.status.batch_id
    for key in (batch_key(batch_id), images_key(batch_id), events_key(batch_id)):
        assert 0 < raw.ttl(key) <= 600
    values = [*raw.hvals(batch_key(batch_id)), *raw.hvals(images_key(batch_id))]
    values += [v for _, event in raw.xrange(events_key(batch_id)) for v in event.values()]
    for value in values:
        assert not value.startswith(b"\x80"), value  # the pickle protocol marker
        value.decode("utf-8")


def test_status_watch_and_list_from_other_processes(
    many: Path, cluster_client: Client, redis_url: str, tmp_path: Path
) -> None:
    handle = pipeline.submit([many], tmp_path, client=cluster_client, redis_url=redis_url)
    watcher = subprocess.Popen(
        [*THUMBFLOW, "watch", handle.batch_id, "--redis", redis_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=command_env(),
    )  # fmt: skip
    report = handle.result()
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    final_line = out.strip().splitlines()[-1]
    status = thumbflow("status", handle.batch_id, "--redis", redis_url)
    assert status.returncode == 0
    assert status.stdout.splitlines()[0] == final_line
    assert "done: ok 40" in final_line
    assert "done: 40/40" in err  # the live progress (plain lines: stderr is a pipe)
    listed = thumbflow("list", "--redis", redis_url)
    assert handle.batch_id in listed.stdout
    as_json = json.loads(
        thumbflow("status", handle.batch_id, "--json", "--redis", redis_url).stdout
    )
    assert as_json["ok"] == report.status.ok == 40

    # cancelling a batch that has ended answers with its final state and changes nothing
    events = redis.Redis.from_url(redis_url).xlen(events_key(handle.batch_id))
    cancelled = thumbflow("cancel", handle.batch_id, "--redis", redis_url)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "already ended" in cancelled.stdout
    assert "done: ok 40" in cancelled.stdout
    after = thumbflow("status", handle.batch_id, "--json", "--redis", redis_url).stdout
    assert json.loads(after) == as_json
    assert stored(redis_url, handle.batch_id)["cancel_requested"] == "0"
    assert redis.Redis.from_url(redis_url).xlen(events_key(handle.batch_id)) == events


def test_cancel_from_another_process_settles_the_batch(
    many: Path, cluster_client: Client, redis_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    handle = pipeline.submit([many], output, client=cluster_client, redis_url=redis_url)
    wait_until(lambda: handle.status().ok >= 2)
    done = thumbflow("cancel", handle.batch_id, "--redis", redis_url)
    assert done.returncode == 0, done.stderr
    final = handle.result().status
    assert final.state == "cancelled"
    assert final.cancelled > 0
    assert manifest_counts(handle.manifest) == redis_counts(redis_url, handle.batch_id)
    assert sum(redis_counts(redis_url, handle.batch_id).values()) == 40
    assert stored(redis_url, handle.batch_id)["state"] == "cancelled"
    written = sorted(output.rglob("*.*"))
    time.sleep(1.0)
    assert sorted(output.rglob("*.*")) == written
    assert leftover_temporaries(output) == []


def test_status_and_cancel_by_id_in_process_without_redis(
    many: Path, cluster_client: Client, tmp_path: Path
) -> None:
    handle = pipeline.submit([many], tmp_path, client=cluster_client)
    assert pipeline.status(handle.batch_id).total == 40
    final = pipeline.cancel(handle.batch_id)
    assert final.state == "cancelled"
    assert final.ok + final.duplicate + final.failed + final.cancelled == 40


def test_unreachable_redis_warns_and_the_batch_still_runs(
    samples: SampleSet, cluster_client: Client, tmp_path: Path
) -> None:
    nowhere = "redis://:hunter2@127.0.0.1:9/0"
    with pytest.warns(pipeline.ProgressStoreWarning, match="progress store unavailable"):
        handle = pipeline.submit(
            samples.images[:1], tmp_path, client=cluster_client, redis_url=nowhere
        )
    assert handle.result().status.ok == 1
    with pytest.raises(pipeline.ProgressStoreUnavailable) as refused:
        pipeline.submit(
            samples.images[:1],
            tmp_path,
            client=cluster_client,
            redis_url=nowhere,
            require_redis=True,
        )
    assert "hunter2" not in str(refused.value)
    assert "***" in str(refused.value)


def test_status_readers_get_a_clear_error_when_redis_is_down() -> None:
    done = thumbflow("status", "some-batch", "--redis", "redis://:hunter2@127.0.0.1:9/0")
    assert done.returncode == 3
    assert "progress store unavailable" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    missing = thumbflow("status", "no-such-batch", "--redis", "redis://127.0.0.1:9/0")
    assert missing.returncode == 3


def test_redis_restarted_mid_batch_ends_with_exact_counts(
    many: Path, cluster_client: Client, redis_binary: str, tmp_path: Path
) -> None:
    server = RedisServer(redis_binary).start()
    try:
        handle = pipeline.submit([many], tmp_path, client=cluster_client, redis_url=server.url)
        wait_until(lambda: handle.status().ok >= 3)
        server.stop()  # nothing persisted: the batch's record is gone with it
        time.sleep(1.0)
        server.start()
        report = handle.result()
        assert report.status.ok == 40
        wait_until(lambda: stored(server.url, handle.batch_id).get("state") == "done", 20)
        assert redis_counts(server.url, handle.batch_id) == manifest_counts(report.manifest)
        assert redis_counts(server.url, handle.batch_id)["ok"] == 40
    finally:
        server.stop()


def test_worker_killed_mid_batch_still_gives_exact_counts(
    many: Path, redis_url: str, tmp_path: Path
) -> None:
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster, set_as_default=False) as client,
        get_task_stream(client) as stream,
    ):
        handle, report = run_killing_a_worker(client, many, tmp_path, redis_url)
    keys = [record["key"] for record in stream.data]
    assert_exact_after_a_kill(handle, report, redis_url, tmp_path)
    reran = len(keys) - len(set(keys))
    print(f"worker kill: {reran} of {len(set(keys))} tasks ran twice")


def test_ctrl_c_cancels_cleanly_with_exit_130(many: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    command = [*THUMBFLOW, "run", str(many), "-o", str(output), "--workers", "1"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=command_env(),
    )
    wait_until(lambda: len(list(output.rglob("record-*.json"))) >= 2, timeout=60)
    children = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "cancelled" in err
    (manifest,) = (output / "manifests").glob("*.jsonl")
    counts = manifest_counts(manifest)
    assert sum(counts.values()) == 40
    assert counts["cancelled"] > 0
    assert leftover_temporaries(output) == []
    wait_until(
        lambda: not any(child.is_running() and child.status() != "zombie" for child in children), 15
    )


def test_interpreter_exit_mid_batch_leaves_a_complete_manifest(many: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    script = tmp_path / "leave_early.py"
    script.write_text(
        "import time, pipeline\n"
        "if __name__ == '__main__':\n"
        f"    handle = pipeline.submit([{str(many)!r}], {str(output)!r}, workers=1)\n"
        "    while handle.status().ok < 2:\n"
        "        time.sleep(0.05)\n"
        "    print(handle.batch_id, flush=True)\n"  # and leave without waiting
    )
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=command_env(),
    )
    assert done.returncode == 0, done.stderr
    (manifest,) = (output / "manifests").glob("*.jsonl")
    counts = manifest_counts(manifest)
    assert sum(counts.values()) == 40
    assert counts["cancelled"] > 0
    assert leftover_temporaries(output) == []
    summary = json.loads(manifest.with_name(manifest.stem + ".summary.json").read_text())
    assert summary["state"] == "cancelled"


def started_thumbflow(*args: str, **options: Any) -> subprocess.Popen[str]:
    """``thumbflow ARGS`` running in the background, its output in pipes."""
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    return subprocess.Popen([*THUMBFLOW, *args], **pipes | {"env": command_env()} | options)


# -- a busy batch: cancel and heartbeat run on a clock -------------------------------------------

BUSY_IMAGES = 3000
# One small JPEG per image: chunks finish many times a second, so results never pause for long.
BUSY_CONFIG = PipelineConfig(
    sizes=(Size(name="tiny", width=32, height=32),),
    encodings=(Encoding(format="jpeg", quality=70),),
)


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Many tiny photos: a batch of them delivers results many times a second for a while."""
    folder = tmp_path_factory.mktemp("busy")
    for number in range(BUSY_IMAGES):
        photo_like(48, 32, seed=number).save(folder / f"{number:04d}.jpg", quality=80)
    return folder


@pytest.fixture(scope="module")
def busy_client() -> Iterator[Client]:
    """Two worker processes of four threads each: eight chunks finish at staggered times, so
    results arrive in a steady stream rather than in bursts with pauses between them."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=4, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        yield client


def submit_busy(folder: Path, client: Client, redis_url: str, output: Path) -> pipeline.BatchHandle:
    return pipeline.submit([folder], output, config=BUSY_CONFIG, client=client, redis_url=redis_url)


def test_a_busy_batch_acts_on_a_cancel_from_another_process_within_a_second(
    busy: Path,
    busy_client: Client,
    redis_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handle = submit_busy(busy, busy_client, redis_url, tmp_path)
    wait_until(lambda: handle.status().ok >= 100)
    requester = started_thumbflow("cancel", handle.batch_id, "--redis", redis_url, "--no-wait")
    try:
        wait_until(lambda: stored(redis_url, handle.batch_id)["cancel_requested"] == "1", 60, 0.01)
        requested = time.monotonic()
        assert not handle.done(), "the batch ended before the request: give it more images"
        report = handle.result(timeout=2.0)  # raises TimeoutError if it has not settled by then
        settled_in = time.monotonic() - requested
    finally:
        requester.communicate(timeout=60)
    (relayed,) = [r for r in caplog.records if "cancel requested through" in r.getMessage()]
    acted_in = relayed.created - cancel_request_time(redis_url, handle.batch_id)
    print(f"busy batch: cancel acted on after {acted_in:.2f} s, settled after {settled_in:.2f} s")
    assert acted_in < 1.0
    assert report.status.state == "cancelled"
    assert 0 < report.status.cancelled < BUSY_IMAGES
    assert len(read_rows(report.manifest)) == BUSY_IMAGES
    assert stored(redis_url, handle.batch_id)["state"] == "cancelled"
    assert redis_counts(redis_url, handle.batch_id) == manifest_counts(report.manifest)


def cancel_request_time(url: str, batch_id: str) -> float:
    """When the request reached Redis, from its entry in the batch's events (ids are Redis's
    clock in milliseconds; this machine's clock is the same one)."""
    events = redis.Redis.from_url(url, decode_responses=True).xrange(events_key(batch_id))
    (entry_id,) = [entry for entry, event in events if event.get("request") == "cancel"]
    return int(entry_id.split("-")[0]) / 1000


def test_the_heartbeat_keeps_a_busy_batch_running(
    busy: Path, busy_client: Client, redis_url: str, tmp_path: Path
) -> None:
    handle = submit_busy(busy, busy_client, redis_url, tmp_path)
    store = RedisStore(redis_url)
    try:
        wait_until(lambda: handle.status().ok >= 100)
        ok_before, started = handle.status().ok, time.monotonic()
        beats = set()
        while time.monotonic() - started < 3.5:
            record = store.batch(handle.batch_id)
            assert not record.stale
            beats.add(record.fields["heartbeat_at"])
            time.sleep(0.1)
        rate = (handle.status().ok - ok_before) / (time.monotonic() - started)
        assert not handle.done(), "the batch ended during the stretch: give it more images"
    finally:
        handle.cancel()
    print(f"busy batch: {rate:.0f} images/s, {len(beats)} heartbeats in 3.5 s")
    assert rate >= 10, "not a busy stretch"
    assert len(beats) >= 3  # one a second


# -- Redis away when the batch ends, or hung -------------------------------------------------------


def test_the_final_state_lands_when_redis_returns_after_the_batch_ended(
    many: Path, redis_binary: str, tmp_path: Path
) -> None:
    server = RedisServer(redis_binary).start()
    output = tmp_path / "out"
    batch = ["run", str(many), "-o", str(output), "--workers", "2"]
    process = started_thumbflow(*batch, "--redis", server.url, "--no-progress")
    try:
        batch_id = cli_batch_id(process)
        wait_until(lambda: len(list(output.rglob("record-*.json"))) >= 37, timeout=120)
        server.kill()  # nothing persisted: the record is gone with it
        killed = time.monotonic()
        wait_until(lambda: any((output / "manifests").glob("*.jsonl")), timeout=60)
        ended_in = time.monotonic() - killed
        # back 5 s after it went, and in any case well after the batch ended without it
        time.sleep(max(5.0 - ended_in, 3.0))
        server.start()  # the same port, empty
        back_in = time.monotonic() - killed
        _, err = process.communicate(timeout=120)
        print(f"outage: the batch ended {ended_in:.1f} s into it, Redis back after {back_in:.1f} s")
        assert process.returncode == 0, err
        (manifest,) = (output / "manifests").glob("*.jsonl")
        assert stored(server.url, batch_id)["state"] == "done"
        assert redis_counts(server.url, batch_id) == manifest_counts(manifest)
        assert redis_counts(server.url, batch_id)["ok"] == 40
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        server.stop()


def test_giving_up_on_the_store_says_so_in_one_line(
    redis_binary: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(redis_binary).start()
    try:
        progress = RedisProgress(RedisStore(server.url), "gives-up", final_state_wait_s=1.0)
        progress.start({"total": 1})
        progress.state("running", started_at=time.time())
        wait_until(lambda: stored(server.url, "gives-up").get("state") == "running", 10)
    finally:
        server.kill()
    progress.image(ImageResult(0, "a.jpg", "ok"))
    progress.state("done")
    started = time.monotonic()
    assert not progress.close(timeout_s=10)
    assert time.monotonic() - started < 5
    (line,) = [r.getMessage() for r in caplog.records if "never came back" in r.getMessage()]
    assert "stale" in line
    assert "expire" in line
    assert "\n" not in line


def test_readers_of_a_hung_redis_give_up_within_the_documented_timeout(
    redis_binary: str,
) -> None:
    server = RedisServer(redis_binary).start()
    try:
        RedisStore(server.url).create("hung", {"state": "running", "total": 1})
        server.pause()  # accepts connections, answers nothing
        started = time.monotonic()
        with pytest.raises(pipeline.ProgressStoreUnavailable):
            pipeline.status("hung", redis_url=server.url)
        waited = time.monotonic() - started
    finally:
        server.stop()
    print(f"hung Redis: status gave up after {waited:.1f} s")
    assert waited < 3.0


# -- a batch whose driver is gone -----------------------------------------------------------------


def test_watch_and_cancel_say_when_the_batch_driver_is_gone(
    many: Path, redis_url: str, tmp_path: Path
) -> None:
    output = str(tmp_path / "out")
    driver = started_thumbflow(
        "run", str(many), "-o", output, "--workers", "1", "--redis", redis_url, "--no-progress",
        stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    batch_id = cli_batch_id(driver)
    wait_until(lambda: int(stored(redis_url, batch_id).get("ok", 0)) >= 2, timeout=120)
    workers = psutil.Process(driver.pid).children(recursive=True)
    os.killpg(driver.pid, signal.SIGKILL)  # the machine went away: no atexit, no last word
    driver.communicate()
    for worker in workers:
        with contextlib.suppress(psutil.NoSuchProcess):
            worker.kill()
    readers = {
        name: started_thumbflow(name, batch_id, "--redis", redis_url)
        for name in ("watch", "cancel")
    }
    started = time.monotonic()
    try:
        for name, reader in readers.items():
            out, err = reader.communicate(timeout=30)
            took = time.monotonic() - started
            print(f"{name} of a dead batch: exit {reader.returncode} after {took:.1f} s")
            assert reader.returncode == EXIT_DRIVER_GONE, (name, out, err)
            assert f"batch {batch_id}: its driver is gone" in err
            assert "Traceback" not in err
    finally:
        for reader in readers.values():
            if reader.poll() is None:
                reader.kill()
                reader.communicate()
    assert time.monotonic() - started < 20  # 5 s without a heartbeat, and two interpreters starting
    assert stored(redis_url, batch_id)["state"] == "running"  # nobody is left to change it


# -- each image counted once, however often it is written ------------------------------------------


def test_recording_an_outcome_again_never_counts_it_twice(redis_url: str) -> None:
    store = RedisStore(redis_url)
    store.create("twice", {"state": "running", "total": 4})
    first = [(0, "ok", "a.jpg", ""), (1, "failed", "b.jpg", "truncated"), (2, "duplicate", "c", "")]
    assert store.record_images("twice", first) == 3
    # the same outcomes again (a retried write whose reply was lost), and a re-run's outcome
    # for image 0 that differs from the first: only image 3 is new
    again = [*first, (0, "failed", "a.jpg", "decode_error"), (3, "ok", "d.jpg", "")]
    assert store.record_images("twice", again) == 1
    assert redis_counts(redis_url, "twice") == {
        "ok": 2,
        "duplicate": 1,
        "failed": 1,
        "cancelled": 0,
    }
    images = redis.Redis.from_url(redis_url, decode_responses=True).hgetall(images_key("twice"))
    assert json.loads(images["0"])["status"] == "ok"  # the first outcome stands


def test_a_record_lost_mid_batch_is_rewritten_with_each_image_once(redis_url: str) -> None:
    progress = RedisProgress(RedisStore(redis_url), "replayed")
    results = [ImageResult(index, f"{index}.jpg", "ok") for index in range(6)]
    results[4] = ImageResult(
        4, "4.jpg", "failed", failure=Failure("validate", "truncated", "cut short")
    )
    progress.start({"total": 6})
    progress.state("running", started_at=time.time())
    for result in results[:3]:
        progress.image(result)
    progress.image(results[1])  # sent again, as after a write whose reply was lost
    wait_until(lambda: stored(redis_url, "replayed").get("ok") == "3", 10)
    # an eviction takes the batch's hash but leaves its images: the writer must rewrite the
    # counts from what it sent, without counting anything twice or dropping what was there
    redis.Redis.from_url(redis_url).delete(batch_key("replayed"))
    for result in results[3:]:
        progress.image(result)
    progress.state("done")
    assert progress.close(timeout_s=10)
    independent = {status: sum(r.status == status for r in results) for status in COUNTERS}
    assert redis_counts(redis_url, "replayed") == independent
    assert stored(redis_url, "replayed")["state"] == "done"


def test_waiting_on_a_detached_batch_whose_driver_is_gone_ends_with_the_reason(
    redis_url: str, tmp_path: Path
) -> None:
    """A detached batch's driver that died and was not started again: a handle waiting on it
    (``run(..., detached=True)``, ``handle.result()``) ends and says why, instead of hanging."""
    from pipeline.detached import DETACHED_DRIVER_GONE_AFTER_S, RemoteRun
    from pipeline.storage import OutputRoot

    store = RedisStore(redis_url)
    silent_since = time.time() - DETACHED_DRIVER_GONE_AFTER_S - 5
    batch_id = "20261201-000000-90ne00"
    store.create(batch_id, {"state": "running", "total": 3, "created_at": silent_since - 1,
                            "started_at": silent_since, "heartbeat_at": silent_since})  # fmt: skip
    remote = RemoteRun(batch_id, store, OutputRoot(str(tmp_path)), dashboard_link=None)
    assert remote.wait(timeout=10)
    with pytest.raises(pipeline.ClusterError, match="its driver is gone"):
        remote.report()
    # one silent only briefly is still waited for: Dask may be starting it again elsewhere
    recent = "20261201-000000-90ne01"
    now = time.time()
    store.create(recent, {"state": "running", "total": 3, "created_at": now - 20,
                          "started_at": now - 20, "heartbeat_at": now - 10})  # fmt: skip
    assert not RemoteRun(recent, store, OutputRoot(str(tmp_path)), None).wait(timeout=1)
