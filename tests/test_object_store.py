"""Inputs and outputs in an object store, against a real S3-compatible server (moto_server on
loopback, see tests/s3_server.py): s3fs and botocore run their real HTTP code. One batch from a
bucket into the bucket (a prefix and a glob, a duplicate, a broken object, a hidden one), its
rerun into the same root, a cancelled batch, a cluster whose worker cannot reach the store, and
the CLI. What the server logged shows each file arrived in one PUT under its final key; and the
secret key appears nowhere a batch wrote or said."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import time
from typing import Any

import pytest
import s3fs
from distributed import LocalCluster

import pipeline
from pipeline.driver.manifest import read_manifest
from pipeline.errors import ClusterError
from pipeline.samples import photo_like
from pipeline.storage import TEMPORARY_MARK, OutputRoot
from tests.commands import NEUTRAL_CWD, THUMBFLOW, command_env
from tests.s3_server import SECRET, S3Server, bucket, s3_server

__all__ = ["bucket", "s3_server"]  # the fixtures, imported to be found here

pytestmark = pytest.mark.timeout(300)


def jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    photo_like(*size, seed=seed).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def png(seed: int) -> bytes:
    buffer = io.BytesIO()
    photo_like(200, 200, seed=seed).save(buffer, "PNG")
    return buffer.getvalue()


def keys_under(server: S3Server, prefix: str) -> dict[str, int]:
    """Every object below ``bucket/prefix``, with its size (a fresh listing, no cache)."""
    found = server.filesystem().find(prefix, detail=True)
    return {name: int(info["size"]) for name, info in found.items()}


def text_of_everything(server: S3Server, prefix: str) -> bytes:
    fs = server.filesystem()
    return b"\n".join(fs.cat_file(name) for name in keys_under(server, prefix))


def puts_under(server: S3Server, bucket: str, prefix: str) -> list[str]:
    """The keys PUT (object uploads, copies included) below ``bucket/prefix``, in order."""
    return [
        request.path.removeprefix("/")
        for request in server.requests(bucket)
        if request.method == "PUT" and request.path.startswith(f"/{bucket}/{prefix}")
    ]


def assert_one_put_per_final_key(server: S3Server, bucket: str, prefix: str) -> list[str]:
    """Nothing but the final keys was ever uploaded (no temporary, no ``.partial``, no copy),
    each once; the probe of the output check comes and goes. Returns the keys."""
    puts = [key for key in puts_under(server, bucket, prefix) if ".thumbflow-probe-" not in key]
    assert not [key for key in puts if TEMPORARY_MARK in key or key.endswith(".partial")]
    assert len(puts) == len(set(puts)), "a key was uploaded twice"
    stored = keys_under(server, f"{bucket}/{prefix}")
    assert set(puts) <= set(stored)
    assert not [key for key in stored if ".thumbflow-probe-" in key or TEMPORARY_MARK in key]
    return puts


def test_a_batch_from_a_bucket_into_it_and_a_rerun_that_reuses(
    s3_server, bucket, cluster_client, capfd, caplog
):
    caplog.set_level(logging.DEBUG, logger="pipeline")
    fs = s3_server.filesystem()
    photos = {f"in/photo_{n}.jpg": jpeg(n) for n in range(4)}
    fs.pipe(
        {
            **{f"{bucket}/{key}": data for key, data in photos.items()},
            f"{bucket}/in/photo_0_copy.jpg": photos["in/photo_0.jpg"],  # a duplicate
            f"{bucket}/in/broken.jpg": photos["in/photo_1.jpg"][:900],  # ends early
            f"{bucket}/in/.hidden.jpg": jpeg(9),  # not an input: hidden
            f"{bucket}/more/logo.png": png(5),
            f"{bucket}/more/notes.txt": b"not matched by the glob",
        }
    )
    inputs = [f"s3://{bucket}/in/", f"s3://{bucket}/more/*.png"]
    output = f"s3://{bucket}/out"
    options = s3_server.storage_options()

    handle = pipeline.submit(inputs, output, client=cluster_client, storage_options=options)
    report = handle.result(timeout=180)
    status = report.status
    counts = (status.total, status.ok, status.duplicate, status.failed, status.reused)
    assert counts == (7, 5, 1, 1, 0)
    assert report.manifest == f"{output}/manifests/{status.batch_id}.jsonl"
    rows = read_manifest(report.manifest, options)
    assert sorted(row["source"] for row in rows) == sorted(
        [f"s3://{bucket}/{key}" for key in photos]
        + [
            f"s3://{bucket}/in/photo_0_copy.jpg",
            f"s3://{bucket}/in/broken.jpg",
            f"s3://{bucket}/more/logo.png",
        ]
    )
    stored = keys_under(s3_server, f"{bucket}/out")
    made = [row for row in rows if row["status"] == "ok"]
    for row in made:  # every derivative is in the bucket, whole, beside its record
        for derivative in row["outputs"]:
            assert stored[f"{bucket}/out/{derivative['path']}"] == derivative["bytes"]
        folder = f"{bucket}/out/{row['sha256'][:2]}/{row['sha256']}/"
        assert [key for key in stored if key.startswith(folder) and "/record-" in key]
    assert sum(len(row["outputs"]) for row in made) == 5 * 6  # 3 sizes x 2 formats
    summary = json.loads(fs.cat_file(f"{bucket}/out/manifests/{status.batch_id}.summary.json"))
    assert (summary["ok"], summary["manifest"]) == (5, report.manifest)
    first_puts = assert_one_put_per_final_key(s3_server, bucket, "out/")
    # and no request per write to make "folders" a bucket does not have (s3fs asks the bucket)
    asked = [r for r in s3_server.requests(bucket) if r.method == "HEAD" and r.path == f"/{bucket}"]
    assert len(asked) < 5, f"{len(asked)} requests to the bucket itself for 5 images"

    # a rerun into the same root, with one new image: the five are reused, only it is made
    fs.pipe_file(f"{bucket}/more/new.png", png(6))
    again = pipeline.run(inputs, output, client=cluster_client, storage_options=options)
    assert (again.status.total, again.status.ok, again.status.reused) == (8, 6, 5)
    all_puts = assert_one_put_per_final_key(s3_server, bucket, "out/")
    new_puts = all_puts[len(first_puts) :]
    (new_row,) = [
        row for row in read_manifest(again.manifest, options) if row["source"].endswith("new.png")
    ]
    new_folder = f"{bucket}/out/{new_row['sha256'][:2]}/{new_row['sha256']}/"
    assert sorted(key for key in new_puts if not key.startswith(new_folder)) == sorted(
        [
            f"{bucket}/out/manifests/{again.status.batch_id}.jsonl",
            f"{bucket}/out/manifests/{again.status.batch_id}.summary.json",
        ]
    )
    # two batches in one root: both manifests and summaries stay
    assert len(keys_under(s3_server, f"{bucket}/out/manifests")) == 4

    # the secret is in nothing the batches wrote, showed or logged
    shown = [repr(handle), str(handle), repr(report), str(report), repr(again)]
    root = OutputRoot(output, options)
    shown += [
        repr(root),
        str(root.storage_options),
        repr(handle._run),
        repr(pipeline.status(handle.batch_id)),
    ]
    captured = capfd.readouterr()
    assert SECRET.encode() not in text_of_everything(s3_server, f"{bucket}/out")
    assert SECRET not in "\n".join([*shown, captured.out, captured.err, caplog.text])


def test_a_cancelled_batch_leaves_no_partial_object(s3_server, bucket, cluster_client):
    fs = s3_server.filesystem()
    fs.pipe({f"{bucket}/in/{n:02d}.jpg": jpeg(100 + n, (1600, 1200)) for n in range(12)})
    handle = pipeline.submit(
        [f"s3://{bucket}/in/"],
        f"s3://{bucket}/out",
        client=cluster_client,
        storage_options=s3_server.storage_options(),
    )
    deadline = time.monotonic() + 120
    while handle.status().ok < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    status = handle.cancel(timeout=60)
    assert status.state == "cancelled"
    assert status.cancelled > 0, "the batch ended before the cancel: nothing was tested"
    assert_one_put_per_final_key(s3_server, bucket, "out/")
    rows = read_manifest(handle.manifest, s3_server.storage_options())
    assert len(rows) == 12


def test_a_worker_that_cannot_reach_the_store_is_refused_with_the_reason(
    s3_server, bucket, monkeypatch
):
    """The workers of a cluster we did not start take their credentials and endpoint from
    their own environment; this one's endpoint leads nowhere, while this process reaches the
    store. The batch is refused before anything is submitted, saying which worker and why."""
    s3_server.filesystem().pipe_file(f"{bucket}/in/a.jpg", jpeg(1))
    nowhere = S3Server(log=s3_server.log).endpoint  # a free port: nothing listens there
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FSSPEC_S3_ENDPOINT_URL")  # read at import: use botocore's variable
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", nowhere)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)  # this process: fine
        (worker,) = cluster.scheduler_info["workers"]
        s3fs.S3FileSystem.clear_instance_cache()
        try:
            with pytest.raises(ClusterError) as refused:
                pipeline.submit(
                    [f"s3://{bucket}/in/"],
                    f"s3://{bucket}/out",
                    scheduler=cluster.scheduler_address,
                )
        finally:
            s3fs.S3FileSystem.clear_instance_cache()
    message = str(refused.value)
    assert "the workers cannot reach the batch's storage, nothing was submitted" in message
    # the reasons, for the input and for the output
    cannot_connect = f'EndpointConnectionError: Could not connect to the endpoint URL: "{nowhere}/'
    assert f"{worker}: cannot list input s3://{bucket}/in/ ({cannot_connect}" in message
    assert f"output 's3://{bucket}/out' is not writable: {cannot_connect}" in message
    assert SECRET not in message
    assert not keys_under(s3_server, f"{bucket}/out")  # nothing was written


def test_the_cli_reads_and_writes_a_bucket_with_credentials_from_the_environment(s3_server, bucket):
    """The standard places: botocore's AWS_* variables, fsspec's FSSPEC_S3_ENDPOINT_URL."""
    s3_server.filesystem().pipe(
        {f"{bucket}/in/{n}.jpg": jpeg(200 + n) for n in range(2)}
        | {f"{bucket}/in/broken.jpg": b"<html>not an image</html>"}
    )
    command = ["run", f"s3://{bucket}/in/", "-o", f"s3://{bucket}/out/", "--workers", "1"]
    command += ["--size", "small=64x64", "--json", "--no-progress"]
    done = subprocess.run(
        [*THUMBFLOW, *command],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=NEUTRAL_CWD,
        env=command_env(s3_server.environment()),
    )
    assert done.returncode == 0, done.stderr
    described: dict[str, Any] = json.loads(done.stdout)
    assert (described["ok"], described["failed"]) == (2, 1)
    manifest = described["manifest"]
    assert manifest.startswith(f"s3://{bucket}/out/manifests/")
    rows = read_manifest(manifest, s3_server.storage_options())
    assert sorted(row["status"] for row in rows) == ["failed", "ok", "ok"]
    assert_one_put_per_final_key(s3_server, bucket, "out/")
    assert SECRET not in done.stdout + done.stderr
