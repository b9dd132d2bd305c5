"""A shared cluster made of real `dask scheduler` and `dask worker` processes on loopback:
preflight checks, concurrent and detached batches, faults, TLS, and what a batch may write."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed import Client, Security
from distributed.versions import VersionMismatchWarning

import pipeline
from pipeline.cli import EXIT_CLUSTER_LOST
from pipeline.config import PipelineConfig
from pipeline.samples import SampleSet
from tests.commands import NEUTRAL_CWD, THUMBFLOW, command_env
from tests.dask_processes import DaskCluster, dask_cluster
from tests.helpers import (
    assert_exact_after_a_kill,
    leftover_temporaries,
    manifest_counts,
    read_rows,
    redis_counts,
    run_killing_a_worker,
    stored,
    wait_until,
)
from tests.test_cli import thumbflow


@pytest.fixture(scope="module")
def shared() -> Iterator[DaskCluster]:
    with dask_cluster(workers=2) as cluster:
        yield cluster


def fake_pipeline(folder: Path, body: str) -> dict[str, str]:
    """An environment whose `pipeline` is another package: first on PYTHONPATH. Its `toolz`
    claims another version too (metadata only), as another environment's Dask stack would, so
    that Dask itself warns with its table of mismatched versions when a client connects."""
    package = folder / "pipeline"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(body)
    (package / "_version.py").write_text(body)
    metadata = folder / "toolz-0.0.1.dist-info"
    metadata.mkdir()
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: toolz\nVersion: 0.0.1\n")
    return {"PYTHONPATH": str(folder)}


def test_batch_runs_on_a_shared_cluster_by_address(
    shared: DaskCluster, samples: SampleSet, tmp_path: Path
) -> None:
    report = pipeline.run([samples.folder], tmp_path, scheduler=shared.address)
    assert (report.status.ok, report.status.duplicate, report.status.failed) == (8, 1, 2)
    assert report.status.state == "done"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("__version__ = '9.9.9'\n", "has thumbflow 9.9.9"),
        ("raise ImportError('thumbflow is not installed here')\n", "cannot import pipeline"),
    ],
    ids=["other-version", "not-installed"],
)
def test_preflight_refuses_a_cluster_that_cannot_run_this_version(
    body: str, expected: str, samples: SampleSet, tmp_path: Path
) -> None:
    with dask_cluster(workers=1) as cluster:
        cluster.add_worker(env=fake_pipeline(tmp_path / "env", body))
        cluster.wait_for(2)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(pipeline.ClusterError, match="nothing was submitted") as refused:
                pipeline.submit([samples.folder], tmp_path / "out", scheduler=cluster.address)
        assert expected in str(refused.value)
        assert f"thumbflow=={pipeline.__version__}" in str(refused.value)
        # our refusal is the whole message: Dask's version table is not shown besides it
        assert [w for w in caught if issubclass(w.category, VersionMismatchWarning)] == []
        cli = thumbflow("run", str(samples.folder), "-o", str(tmp_path / "cli"),
                        "--scheduler", cluster.address)  # fmt: skip
        assert cli.returncode == 3
        assert cli.stderr.splitlines() == [f"thumbflow: {refused.value}"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VersionMismatchWarning)  # this client is not ours
            client = Client(cluster.address, timeout=10)
        with client:
            tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks))
            assert tasks == 0  # nothing reached the cluster
            assert len(client.scheduler_info()["workers"]) == 2  # and no worker died


def test_local_paths_the_workers_cannot_see_are_refused(samples: SampleSet, tmp_path: Path) -> None:
    """One worker runs in its own mount namespace where the client's folder is an empty tmpfs,
    as a worker on another machine would not have it."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to give a worker its own view of the files")
    private = tmp_path / "only-here"
    (private / "in").mkdir(parents=True)
    (private / "in" / "a.jpg").write_bytes(samples.images[0].read_bytes())
    hide = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            f'mount -t tmpfs tmpfs "{private}" && exec "$0" "$@"']  # fmt: skip
    with dask_cluster(workers=1) as cluster:
        cluster.add_worker(prefix=hide)
        cluster.wait_for(2)
        with pytest.raises(pipeline.ClusterError, match="do not see the same files") as refused:
            pipeline.submit([private / "in"], private / "out", scheduler=cluster.address)
    message = str(refused.value)
    assert "is not visible on" in message
    assert "is not writable on" in message


def test_two_batches_from_two_clients_run_at_once_and_cancel_separately(
    shared: DaskCluster, many: Path, redis_url: str, tmp_path: Path
) -> None:
    with Client(shared.address, timeout=10) as first, Client(shared.address, timeout=10) as second:
        kept = pipeline.submit([many], tmp_path / "a", client=first, redis_url=redis_url)
        dropped = pipeline.submit([many], tmp_path / "b", client=second, redis_url=redis_url)
        assert kept.batch_id != dropped.batch_id
        wait_until(lambda: dropped.status().ok >= 1)
        done = thumbflow("cancel", dropped.batch_id, "--redis", redis_url)
        assert done.returncode == 0, done.stderr
        assert dropped.result().status.state == "cancelled"
        report = kept.result()
    assert report.status.ok == 40
    assert redis_counts(redis_url, kept.batch_id)["ok"] == 40
    assert stored(redis_url, dropped.batch_id)["state"] == "cancelled"
    assert sum(redis_counts(redis_url, dropped.batch_id).values()) == 40


def test_worker_killed_mid_batch_on_a_real_cluster(
    shared: DaskCluster, many: Path, redis_url: str, tmp_path: Path
) -> None:
    with Client(shared.address, timeout=10) as client:
        handle, report = run_killing_a_worker(client, many, tmp_path, redis_url)
        client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests
    assert_exact_after_a_kill(handle, report, redis_url, tmp_path)


def test_detached_batch_outlives_its_submitter_and_stays_exact(
    shared: DaskCluster, many: Path, redis_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    script = (
        "import pipeline\n"
        f"handle = pipeline.submit([{str(many)!r}], {str(output)!r}, "
        f"scheduler={shared.address!r}, redis_url={redis_url!r}, detached=True)\n"
        "print(handle.batch_id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=command_env(),
        cwd=NEUTRAL_CWD,
    )
    assert done.returncode == 0, done.stderr
    batch_id = done.stdout.strip().splitlines()[-1]
    # the submitting process is gone; anyone can follow the batch by id
    wait_until(lambda: pipeline.status(batch_id, redis_url=redis_url).finished, timeout=120)
    final = pipeline.status(batch_id, redis_url=redis_url)
    assert (final.state, final.ok, final.pending) == ("done", 40, 0)
    assert manifest_counts(output / "manifests" / f"{batch_id}.jsonl")["ok"] == 40
    assert redis_counts(redis_url, batch_id)["ok"] == 40


def test_detached_batch_cancelled_from_another_process(
    shared: DaskCluster, many: Path, redis_url: str, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    handle = pipeline.submit(
        [many], output, scheduler=shared.address, redis_url=redis_url, detached=True
    )
    wait_until(lambda: handle.status().ok >= 1, timeout=60)
    done = thumbflow("cancel", handle.batch_id, "--redis", redis_url)
    assert done.returncode == 0, done.stderr
    assert "cancelled" in done.stdout
    report = handle.result(timeout=60)
    assert report.status.state == "cancelled"
    counts = manifest_counts(report.manifest)
    assert counts == redis_counts(redis_url, handle.batch_id)
    assert sum(counts.values()) == 40
    assert counts["cancelled"] > 0


def test_detached_needs_a_shared_cluster_and_a_progress_store(
    samples: SampleSet, shared: DaskCluster, tmp_path: Path
) -> None:
    with pytest.raises(pipeline.ConfigError, match="redis"):
        pipeline.submit([samples.folder], tmp_path, scheduler=shared.address, detached=True)


def test_scheduler_killed_mid_batch_is_one_line_and_a_rerun_resumes(
    many: Path, tmp_path: Path
) -> None:
    output, log = tmp_path / "out", tmp_path / "stderr.txt"
    with dask_cluster(workers=2) as cluster, log.open("w") as stderr:
        assert cluster.scheduler is not None
        command = [*THUMBFLOW, "run", str(many), "-o", str(output), "--scheduler",
                   cluster.address, "--no-progress"]  # fmt: skip
        run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=command_env())
        wait_until(lambda: len(list(output.rglob("record-*.json"))) >= 3, timeout=120)
        os.kill(cluster.scheduler.pid, signal.SIGKILL)  # gone without a word
        code = run.wait(timeout=60)
        finished_before = len(list(output.rglob("record-*.json")))
    text = log.read_text()
    assert code == EXIT_CLUSTER_LOST, text
    *_, last = lines = text.splitlines()
    assert len(lines) == 2, text  # the batch's first line, then this one
    assert "the Dask scheduler went away mid-batch" in last
    assert "rerun to resume" in last
    with dask_cluster(workers=2) as restarted:
        report = pipeline.run([many], output, scheduler=restarted.address)
    rows = read_rows(report.manifest)
    assert report.status.ok == 40
    assert sum(row["reused"] for row in rows) >= finished_before
    assert leftover_temporaries(output) == []


def flat_png(path: Path, width: int, height: int) -> Path:
    """A valid PNG of one colour: tiny on disk, ``width * height * 3`` bytes once decoded."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * (width * 3)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + b"\x08\x02\x00\x00\x00"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
    return path


def test_an_image_that_kills_its_worker_fails_alone(samples: SampleSet, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    bomb = flat_png(inputs / "flat_bomb.png", 10_000, 10_000)  # 300 MB decoded, 300 KB on disk
    for image in samples.images[:3]:
        (inputs / image.name).write_bytes(image.read_bytes())
    retries = {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    with dask_cluster(workers=0, env=retries) as cluster:
        for _ in range(2):
            cluster.add_worker(memory_limit="250MB")
        cluster.wait_for(2)
        config = PipelineConfig(max_pixels=200_000_000)  # let it past the header check
        report = pipeline.run([inputs], tmp_path / "out", scheduler=cluster.address, config=config)
    rows = {Path(row["source"]).name: row for row in read_rows(report.manifest)}
    assert rows[bomb.name]["status"] == "failed"
    assert rows[bomb.name]["failure"]["code"] == "worker_died"
    assert "killed its worker every time, even alone" in rows[bomb.name]["failure"]["message"]
    assert all(rows[image.name]["status"] == "ok" for image in samples.images[:3])


def make_certificates(folder: Path) -> dict[str, str]:
    """A throwaway CA and one certificate for 127.0.0.1, made with the openssl command."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.pem")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "node.key", "-out", "node.csr")  # fmt: skip
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", "san.ext", "-out", "node.pem")  # fmt: skip
    return {name: str(folder / file) for name, file in
            (("ca", "ca.pem"), ("cert", "node.pem"), ("key", "node.key"))}  # fmt: skip


def test_tls_cluster_through_the_api(samples: SampleSet, tmp_path: Path) -> None:
    if subprocess.run(["which", "openssl"], capture_output=True).returncode:
        pytest.skip("openssl is not installed")
    certs_dir = tmp_path / "certs"
    certs_dir.mkdir()
    certs = make_certificates(certs_dir)
    tls = ["--tls-ca-file", certs["ca"], "--tls-cert", certs["cert"], "--tls-key", certs["key"]]
    security = Security(
        tls_ca_file=certs["ca"], tls_client_cert=certs["cert"], tls_client_key=certs["key"],
        require_encryption=True,
    )  # fmt: skip
    cluster = DaskCluster(protocol="tls", scheduler_args=["--protocol", "tls", *tls])
    cluster.start_scheduler()
    try:
        cluster.add_worker(args=tls)
        cluster.wait_for(1, client_kwargs={"security": security})
        report = pipeline.run(
            samples.images[:2], tmp_path / "out", scheduler=cluster.address, security=security
        )
        assert report.status.ok == 2
        with pytest.raises(pipeline.ClusterError, match="cannot reach"):
            pipeline.submit(samples.images[:1], tmp_path / "plain", scheduler=cluster.address)
    finally:
        cluster.stop()


def test_outputs_stay_under_the_root_whatever_the_input_names(
    cluster_client: Client, samples: SampleSet, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    tricky = inputs / "..." / "a b" / "..x"
    tricky.mkdir(parents=True)
    names = ["../../escape.jpg", "...", "%2e%2e%2fescape.jpg", "new\nline.jpg", "ünïcode.jpg"]
    files = []
    for number, name in enumerate(names):
        safe = name.replace("/", "_")  # the file system forbids '/', the rest is as given
        (tricky / safe).write_bytes(samples.images[number].read_bytes())
        files.append(tricky / safe)  # named one by one: a folder walk skips hidden names
    output = tmp_path / "out"
    report = pipeline.run(files, output, client=cluster_client)
    assert report.status.ok == len(names)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(inputs)]
    assert written
    assert all(path.is_relative_to(output) for path in written)


def test_redis_credentials_never_reach_logs_manifests_or_reprs(
    cluster_client: Client, samples: SampleSet, redis_binary: str, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    from tests.redis_server import RedisServer

    server = RedisServer(redis_binary, password="s3cret-pa55").start()
    try:
        with caplog.at_level("DEBUG"):
            handle = pipeline.submit(
                samples.images[:2], tmp_path, client=cluster_client, redis_url=server.url
            )
            report = handle.result()
        seen = [caplog.text, repr(handle), repr(handle._run.progress)]
        seen += [path.read_text() for path in (tmp_path / "manifests").iterdir()]
        seen += [thumbflow("status", handle.batch_id, "--redis", server.url).stdout]
        bad = thumbflow("status", "x", "--redis", server.url.replace("127.0.0.1", "127.0.0.2"))
        seen += [bad.stdout + bad.stderr]
        assert report.status.ok == 2
        assert not [text for text in seen if "s3cret-pa55" in text]
    finally:
        server.stop()
