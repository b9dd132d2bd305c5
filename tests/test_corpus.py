"""The shared corpus of real photos and format cases, every file accounted for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from distributed import Client

import pipeline
from pipeline.config import PipelineConfig
from tests.helpers import assert_derivatives_fit, leftover_temporaries, read_rows

IMAGE_FOLDERS = ("photos", "orientation", "formats")


@pytest.fixture(scope="module")
def corpus_run(corpus: Path, cluster_client: Client, tmp_path_factory: pytest.TempPathFactory):
    output = tmp_path_factory.mktemp("corpus-out")
    folders = [corpus / name for name in IMAGE_FOLDERS]
    report = pipeline.run(folders, output, client=cluster_client)
    return output, report, read_rows(report.manifest)


def test_every_corpus_file_gives_derivatives(corpus: Path, corpus_run) -> None:
    _, report, rows = corpus_run
    files = sorted(str(p) for name in IMAGE_FOLDERS for p in (corpus / name).iterdir())
    assert sorted(row["source"] for row in rows) == files
    problems = {row["source"]: row["failure"] for row in rows if row["status"] != "ok"}
    assert problems == {}
    assert report.status.ok == len(files)


@pytest.mark.parametrize("folder", IMAGE_FOLDERS)
def test_corpus_derivatives_fit_their_boxes(folder: str, corpus_run) -> None:
    output, _, rows = corpus_run
    for row in rows:
        if f"/{folder}/" in row["source"]:
            assert_derivatives_fit(row, output, PipelineConfig())


def test_photos_with_a_duplicate_and_a_corrupt_file(
    corpus: Path, cluster_client: Client, tmp_path: Path
) -> None:
    """The walking skeleton's acceptance case: 25 photos, a copy of one, a corrupt file."""
    extra = tmp_path / "extra"
    extra.mkdir()
    shutil.copy(corpus / "photos" / "nikon_d70.jpg", extra / "copy_of_nikon.jpg")
    (extra / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40)
    output = tmp_path / "out"
    report = pipeline.run([corpus / "photos", extra], output, client=cluster_client)
    rows = {Path(row["source"]).name: row for row in read_rows(report.manifest)}
    assert len(rows) == 27
    assert rows["copy_of_nikon.jpg"]["status"] == "duplicate"
    assert rows["copy_of_nikon.jpg"]["duplicate_of"].endswith("photos/nikon_d70.jpg")
    assert rows["corrupt.jpg"]["status"] == "failed"
    assert rows["corrupt.jpg"]["failure"]["code"] in ("decode_error", "truncated")
    assert "corrupt.jpg" in rows["corrupt.jpg"]["failure"]["message"]
    others = [row for name, row in rows.items() if name not in ("copy_of_nikon.jpg", "corrupt.jpg")]
    assert all(row["status"] == "ok" and len(row["outputs"]) == 6 for row in others)
    assert len(list(output.rglob("record-*.json"))) == 25
    assert leftover_temporaries(output) == []
