"""Progress in a real Redis: exact counts, status/watch/list/cancel from other processes,
Redis outages, worker deaths and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from distributed import Client, LocalCluster, get_task_stream

import pipeline
from pipeline.progress.store import batch_key, events_key, images_key
from pipeline.samples import SampleSet
from tests.helpers import (
    assert_exact_after_a_kill,
    leftover_temporaries,
    manifest_counts,
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
        ["thumbflow", "watch", handle.batch_id, "--redis", redis_url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    report = handle.result()
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    final_line = out.strip().splitlines()[-1]
    status = thumbflow("status", handle.batch_id, "--redis", redis_url)
    assert status.returncode == 0
    assert status.stdout.splitlines()[0] == final_line
    assert "done: ok 40" in final_line
    assert "img" in err  # the live bar
    listed = thumbflow("list", "--redis", redis_url)
    assert handle.batch_id in listed.stdout
    as_json = json.loads(
        thumbflow("status", handle.batch_id, "--json", "--redis", redis_url).stdout
    )
    assert as_json["ok"] == report.status.ok == 40


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
    command = ["thumbflow", "run", str(many), "-o", str(output), "--workers", "1"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
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
        [sys.executable, str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (manifest,) = (output / "manifests").glob("*.jsonl")
    counts = manifest_counts(manifest)
    assert sum(counts.values()) == 40
    assert counts["cancelled"] > 0
    assert leftover_temporaries(output) == []
    summary = json.loads(manifest.with_name(manifest.stem + ".summary.json").read_text())
    assert summary["state"] == "cancelled"
