"""After a worker dies mid-batch, the temporary files it left are removed, and only those: a
concurrent batch writing the same images into the same root loses nothing."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from distributed import Client, LocalCluster

import pipeline
from pipeline.config import PipelineConfig
from pipeline.storage import temporary_owner
from tests.helpers import (
    assert_derivatives_fit,
    leftover_temporaries,
    plant_temporary,
    read_rows,
    wait_until,
)


def test_a_lost_workers_temporaries_go_and_no_one_elses(many: Path, tmp_path: Path) -> None:
    output = tmp_path / "out"
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, dashboard_address=":0", silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        first = pipeline.submit([many], output, client=client)
        second = pipeline.submit([many], output, client=client)  # same images, same root
        wait_until(lambda: first.status().ok >= 5)
        folder = next(output.rglob("record-*.json")).parent
        (victim, pid), (survivor, _) = client.run(os.getpid).items()
        orphan = plant_temporary(folder, temporary_owner(first.batch_id, victim))
        # a third batch, still writing this image on a live worker, must keep its file
        elsewhere = plant_temporary(folder, temporary_owner("20991231-235959-c0ffee", survivor))
        os.kill(pid, signal.SIGKILL)
        reports = [first.result(timeout=240), second.result(timeout=240)]
    assert not orphan.exists()
    assert elsewhere.exists()
    elsewhere.unlink()
    assert leftover_temporaries(output) == []
    for report in reports:
        rows = read_rows(report.manifest)
        assert sorted(row["index"] for row in rows) == list(range(40))
        assert [row["failure"] for row in rows if row["status"] != "ok"] == []
        for row in rows:
            assert_derivatives_fit(row, output, PipelineConfig())
