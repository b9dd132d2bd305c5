"""Assertions shared by the integration tests."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from PIL import Image, ImageOps

import pipeline
from pipeline.config import PipelineConfig
from pipeline.progress.store import batch_key
from pipeline.storage import TEMPORARY_MARK, temporary_owner


def read_rows(manifest: str | Path) -> list[dict[str, Any]]:
    with open(manifest, encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def leftover_temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".tmp-" in p.name or p.name.endswith(".partial")]


def displayed_size(path: str | Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size if image.getexif().get(0x0112) else image.size


def assert_derivatives_fit(row: dict[str, Any], root: Path, config: PipelineConfig) -> None:
    """Every size x format is on disk, decodes, matches the manifest, fits its box, keeps the
    source's aspect ratio within a pixel and is never larger than the source."""
    source_width, source_height = displayed_size(row["source"])
    assert len(row["outputs"]) == len(config.sizes) * len(config.encodings), row["source"]
    boxes = {size.name: size for size in config.sizes}
    for output in row["outputs"]:
        with Image.open(root / output["path"]) as image:
            assert image.size == (output["width"], output["height"]), output
            assert (
                image.format == {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}[output["format"]]
            )
        assert (root / output["path"]).stat().st_size == output["bytes"]
        box = boxes[output["size"]]
        width, height = output["width"], output["height"]
        assert 1 <= width <= min(box.width, source_width), (row["source"], output)
        assert 1 <= height <= min(box.height, source_height), (row["source"], output)
        ratio = source_width / source_height
        # the source's aspect ratio, to a pixel on the side that was derived from the other
        assert abs(width - height * ratio) <= 1 or abs(height - width / ratio) <= 1, output


COUNTERS = ("ok", "duplicate", "failed", "cancelled")


def stored(url: str, batch_id: str) -> dict[str, str]:
    return redis.Redis.from_url(url, decode_responses=True).hgetall(batch_key(batch_id))


def manifest_counts(manifest: str | Path) -> dict[str, int]:
    """Rows by count; a copy of a failed input (``duplicate_of_failed``) is a failed input."""
    tallies = [
        "failed" if row["status"] == "duplicate_of_failed" else row["status"]
        for row in read_rows(manifest)
    ]
    return {status: tallies.count(status) for status in COUNTERS}


def redis_counts(url: str, batch_id: str) -> dict[str, int]:
    fields = stored(url, batch_id)
    return {status: int(fields[status]) for status in COUNTERS}


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(step)


def run_killing_a_worker(
    client: Any, folder: Path, output: Path, redis_url: str
) -> tuple[pipeline.BatchHandle, pipeline.BatchReport]:
    """Submit a batch, SIGKILL one worker process once five images are done, wait for the end.

    A worker killed mid-write leaves its temporary file behind; the kill lands mid-write only
    sometimes, so one such orphan is planted beside a finished image's files first, and the batch
    must still end with none."""
    handle = pipeline.submit([folder], output, client=client, redis_url=redis_url)
    wait_until(lambda: handle.status().ok >= 5)
    record = next(output.rglob("record-*.json"))
    victim, pid = next(iter(client.run(os.getpid).items()))
    plant_temporary(record.parent, temporary_owner(handle.batch_id, victim))
    os.kill(pid, signal.SIGKILL)
    return handle, handle.result()


def plant_temporary(folder: Path, owner: str) -> Path:
    """A half-written file as ``OutputRoot.write_atomic`` names it while writing for ``owner``."""
    planted = folder / f"large.webp{TEMPORARY_MARK}{owner}.{'0' * 32}"
    planted.write_bytes(b"half a file")
    return planted


def assert_exact_after_a_kill(
    handle: pipeline.BatchHandle, report: pipeline.BatchReport, redis_url: str, output: Path
) -> None:
    """Every image counted once, in the manifest and in Redis, and nothing half-written."""
    total = report.status.total
    assert report.status.ok == total
    assert manifest_counts(report.manifest) == dict.fromkeys(COUNTERS, 0) | {"ok": total}
    assert redis_counts(redis_url, handle.batch_id)["ok"] == total
    assert sorted(row["index"] for row in read_rows(report.manifest)) == list(range(total))
    assert leftover_temporaries(output) == []


def cli_batch_id(process: subprocess.Popen[str], timeout: float = 60.0) -> str:
    """The batch id a ``thumbflow run`` announces on its first stderr lines."""
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break  # it exited
        if match := re.match(r"thumbflow: batch (\S+),", line):
            return match.group(1)
    raise AssertionError("thumbflow run never announced its batch")
