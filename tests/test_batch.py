"""A whole batch on a real LocalCluster of worker processes: outputs, dedup, failures, manifest,
atomicity, reruns and cancel."""

from __future__ import annotations

import itertools
import shutil
import time
from pathlib import Path

import pytest
from dask.utils import key_split
from distributed import Client, get_task_stream

import pipeline
from pipeline.config import Encoding, PipelineConfig
from pipeline.samples import SampleSet, photo_like
from pipeline.worker.cancellation import running_tasks
from tests.helpers import (
    COUNTERS,
    assert_derivatives_fit,
    leftover_temporaries,
    manifest_counts,
    read_rows,
)


@pytest.fixture(scope="module")
def first_run(samples: SampleSet, cluster_client: Client, tmp_path_factory: pytest.TempPathFactory):
    output = tmp_path_factory.mktemp("out")
    report = pipeline.run([samples.folder], output, client=cluster_client)
    return output, report, read_rows(report.manifest)


def test_every_input_has_exactly_one_manifest_row(first_run, samples: SampleSet) -> None:
    _, report, rows = first_run
    expected = len(samples.images) + len(samples.duplicates) + len(samples.broken)
    assert sorted(row["index"] for row in rows) == list(range(expected))
    assert len({row["source"] for row in rows}) == expected
    status = report.status
    assert (status.total, status.ok, status.duplicate, status.failed, status.cancelled) == (
        expected,
        len(samples.images),
        len(samples.duplicates),
        len(samples.broken),
        0,
    )
    assert status.state == "done"
    assert status.pending == 0


def test_derivatives_fit_their_boxes_and_keep_the_aspect_ratio(first_run) -> None:
    output, _, rows = first_run
    ok_rows = [row for row in rows if row["status"] == "ok"]
    assert ok_rows
    for row in ok_rows:
        assert_derivatives_fit(row, output, PipelineConfig())


def test_exif_rotated_photo_comes_out_upright(first_run) -> None:
    _, _, rows = first_run
    (rotated,) = [row for row in rows if row["source"].endswith("phone_rotated.jpg")]
    large = next(o for o in rotated["outputs"] if o["size"] == "large")
    assert (large["width"], large["height"]) == (1440, 1080)  # stored 1200x1600, tag 6


def test_duplicate_is_processed_once_and_points_at_the_first(first_run, samples: SampleSet) -> None:
    _, _, rows = first_run
    by_source = {row["source"]: row for row in rows}
    first = by_source[str(samples.images[0])]
    copy = by_source[str(samples.duplicates[0])]
    assert copy["status"] == "duplicate"
    assert copy["duplicate_of"] == first["source"]
    assert copy["sha256"] == first["sha256"]
    assert copy["outputs"] == first["outputs"]
    assert copy["timings_ms"] == {}  # no step ran for it


def test_bad_files_fail_alone_with_clear_typed_errors(first_run) -> None:
    _, report, rows = first_run
    failed = {Path(row["source"]).name: row["failure"] for row in rows if row["status"] == "failed"}
    assert failed["truncated_download.jpg"]["code"] == "truncated"
    assert failed["notes.jpg"]["code"] == "not_an_image"
    assert "an HTML page" in failed["notes.jpg"]["message"]
    assert all("notes.jpg" in f["message"] or "truncated" in f["message"] for f in failed.values())
    assert report.failures_by_code == {"truncated": 1, "not_an_image": 1}


def test_outputs_are_content_addressed_and_leave_no_temporary_files(first_run) -> None:
    output, _, rows = first_run
    for row in rows:
        for item in row["outputs"]:
            assert item["path"].startswith(f"{row['sha256'][:2]}/{row['sha256']}/")
    assert leftover_temporaries(output) == []


def test_timings_cover_every_step(first_run) -> None:
    _, report, rows = first_run
    assert set(report.timings) == {"hash", "validate", "decode", "resize", "encode", "write"}
    ok_row = next(row for row in rows if row["status"] == "ok")
    assert set(ok_row["timings_ms"]) == set(report.timings)
    assert report.timings["write"].count == report.status.ok
    assert report.timings["decode"].count == report.status.ok + 1  # the truncated file tried


def test_rerun_reuses_finished_images(
    first_run, samples: SampleSet, cluster_client: Client
) -> None:
    output, _, rows = first_run
    stamps = {p: p.stat().st_mtime_ns for p in output.rglob("*.webp")}
    report = pipeline.run([samples.folder], output, client=cluster_client)
    rerun = {row["source"]: row for row in read_rows(report.manifest)}
    for row in rows:
        if row["status"] == "ok":
            assert rerun[row["source"]]["reused"] is True
            assert rerun[row["source"]]["outputs"] == row["outputs"]
            assert "decode" not in rerun[row["source"]]["timings_ms"]
    assert {p: p.stat().st_mtime_ns for p in output.rglob("*.webp")} == stamps
    # the report counts them, and its rate leaves them out (only the failures were redone)
    assert report.status.reused == report.status.ok == 8
    assert report.status.processed == report.status.failed == 2


def test_rerun_with_other_settings_redoes_the_work(
    first_run, samples: SampleSet, cluster_client: Client
) -> None:
    output, _, _ = first_run
    config = PipelineConfig(encodings=(Encoding(format="webp", quality=50),))
    report = pipeline.run([samples.images[0]], output, config=config, client=cluster_client)
    (row,) = read_rows(report.manifest)
    assert row["status"] == "ok"
    assert row["reused"] is False
    assert {o["format"] for o in row["outputs"]} == {"webp"}


def test_tasks_are_named_by_step_for_the_dashboard(
    samples: SampleSet, cluster_client: Client, tmp_path: Path
) -> None:
    with get_task_stream(cluster_client) as stream:
        pipeline.run(samples.images[:3], tmp_path, client=cluster_client)
    # key_split is how the dashboard's task stream and progress bars name a task's group
    groups = {key_split(record["key"]) for record in stream.data}
    assert groups == {"hash", "validate", "resize", "encode"}


def test_submit_returns_a_handle_whose_counts_only_grow_to_the_manifests(
    samples: SampleSet, cluster_client: Client, tmp_path: Path
) -> None:
    handle = pipeline.submit([samples.folder], tmp_path, client=cluster_client)
    seen = []
    while not handle.done():
        seen.append(handle.status())
        time.sleep(0.05)
    seen.append(handle.status())
    # (pending is the remainder of the others: only counts checked against something else can fail)
    counts = [{name: getattr(status, name) for name in COUNTERS} for status in seen]
    for before, after in itertools.pairwise(counts):
        assert all(before[name] <= after[name] for name in COUNTERS), (before, after)
    assert counts[-1] == manifest_counts(handle.manifest)
    assert seen[-1].pending == 0
    assert handle.result().status == seen[-1]
    assert handle.batch_id in repr(handle)


def test_cancel_settles_every_image_and_writes_nothing_afterwards(
    cluster_client: Client, tmp_path: Path
) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    for number in range(40):
        photo_like(1600, 1200, seed=number).save(folder / f"{number:02d}.jpg", quality=90)
    output = tmp_path / "out"
    handle = pipeline.submit([folder], output, client=cluster_client)
    while handle.status().ok == 0:
        time.sleep(0.02)
    final = handle.cancel()
    # cancel returns once nothing of the batch runs anywhere, not only once it is dropped
    assert sum(cluster_client.run(running_tasks, handle.batch_id).values()) == 0
    assert leftover_temporaries(output) == []
    assert final.state == "cancelled"
    assert final.cancelled > 0
    assert final.ok + final.duplicate + final.failed + final.cancelled == final.total == 40
    rows = read_rows(handle.manifest)
    assert sorted(row["index"] for row in rows) == list(range(40))
    written = sorted(output.rglob("record-*.json"))
    time.sleep(1.5)  # tasks running at cancel time end, but their results are not written later
    assert sorted(output.rglob("record-*.json")) == written
    assert leftover_temporaries(output) == []
    # every image without a record is one the manifest calls cancelled
    done = {row["sha256"] for row in rows if row["status"] == "ok"}
    assert len(written) >= len(done)


def test_missing_input_raises_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(pipeline.InputError, match="does not exist"):
        pipeline.submit([tmp_path / "nope"], tmp_path / "out")


def test_unwritable_output_raises_before_any_work(samples: SampleSet, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(pipeline.OutputError, match="not writable"):
        pipeline.submit([samples.folder], blocker / "out")


def test_a_client_of_a_local_cluster_in_this_process_is_not_preflighted(
    samples: SampleSet,
    cluster_client: Client,
    redis_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its workers were spawned from this interpreter: asking them which thumbflow they import
    and whether they see our files would only cost round trips. And since the cluster ends with
    this process, it cannot hold a detached batch."""

    def preflight(*_: object, **__: object) -> None:
        raise AssertionError("preflight ran against an in-process LocalCluster")

    monkeypatch.setattr("pipeline.api.check_versions", preflight)
    monkeypatch.setattr("pipeline.api.check_paths_visible", preflight)
    report = pipeline.run(samples.images[:1], tmp_path, client=cluster_client)
    assert report.status.ok == 1
    with pytest.raises(pipeline.ConfigError, match="outlives this process"):
        pipeline.submit(
            samples.images[:1], tmp_path, client=cluster_client, detached=True, redis_url=redis_url
        )


def test_input_folder_can_be_moved_after_hashing_without_crashing(
    samples: SampleSet, cluster_client: Client, tmp_path: Path
) -> None:
    """An input that vanishes mid-batch is that image's failure, not the batch's."""
    gone = tmp_path / "gone.jpg"
    shutil.copy(samples.images[0], gone)
    report = pipeline.submit([gone, samples.images[1]], tmp_path / "out", client=cluster_client)
    gone.unlink()
    rows = {Path(r["source"]).name: r for r in read_rows(report.result().manifest)}
    assert rows[samples.images[1].name]["status"] == "ok"
    assert rows["gone.jpg"]["status"] in ("ok", "failed")
