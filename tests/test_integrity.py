"""Outputs that never lie: what a batch writes, reuses and lists is true of the content it names.

Each test runs real batches on the shared LocalCluster: a source rewritten while the batch runs,
two settings sharing one output root, an output root inside the input folder, and derivatives
damaged on disk between two runs.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed import Client

import pipeline
from pipeline.config import Encoding, PipelineConfig, Size
from pipeline.inputs import expand_inputs
from pipeline.results import ImageResult
from pipeline.samples import photo_like
from pipeline.storage import OutputRoot
from pipeline.worker.tasks import encode_chunk, hash_chunk, resize_chunk, validate_chunk
from tests.helpers import read_rows as rows_as_written


def read_rows(manifest: str) -> list[dict]:
    """The manifest's rows in input order (they are written as images finish)."""
    return sorted(rows_as_written(manifest), key=lambda row: row["index"])


SMALL = (640, 480)


def _photos(folder: Path, seeds: range, size: tuple[int, int] = SMALL) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in seeds:
        path = folder / f"photo_{seed:03d}.jpg"
        photo_like(*size, seed=seed).save(path, quality=90)
        paths.append(path)
    return paths


def _listed_files(manifest: str, root: Path) -> dict[str, bytes]:
    """Every file the manifest lists, with its bytes as they are now."""
    return {
        output["path"]: (root / output["path"]).read_bytes()
        for row in read_rows(manifest)
        for output in row["outputs"]
    }


def _image_folders(root: Path) -> list[Path]:
    return [folder for folder in root.glob("??/*") if folder.is_dir()]


# --- 1. a source rewritten while the batch runs ------------------------------------------------


@contextmanager
def _swapping(targets: list[Path], pairs: list[tuple[Path, Path]]) -> Iterator[None]:
    """Replace each target with the other picture of its pair, every few milliseconds, by an
    atomic rename (a reader holding the file open keeps reading one whole picture)."""
    stop = threading.Event()

    def swap() -> None:
        turn = 0
        while not stop.is_set():
            turn += 1
            for target, pair in zip(targets, pairs, strict=True):
                staged = target.with_name(f".{target.name}.next")
                os.link(pair[turn % 2], staged)
                os.replace(staged, target)
            stop.wait(0.002)

    thread = threading.Thread(target=swap, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _assert_every_folder_holds_its_own_content(output: Path, reference: Path) -> None:
    """Every file in every image folder is the one a clean batch made from the bytes whose
    digest names the folder (the encoders are deterministic, so bytes compare exactly)."""
    folders = _image_folders(output)
    assert folders
    for folder in folders:
        for file in folder.iterdir():
            relative = file.relative_to(output)
            expected = reference / relative
            assert expected.exists(), f"{relative}: a folder of content no input ever had"
            assert file.read_bytes() == expected.read_bytes(), f"{relative}: another picture"


def test_a_source_rewritten_during_the_batch_never_lands_under_another_digest(
    cluster_client: Client, tmp_path: Path
) -> None:
    count = 16
    originals = _photos(tmp_path / "pictures", range(2 * count))
    pairs = [(originals[2 * i], originals[2 * i + 1]) for i in range(count)]
    reference = tmp_path / "reference"
    pipeline.run([tmp_path / "pictures"], reference, client=cluster_client)
    inputs = tmp_path / "in"
    inputs.mkdir()
    targets = [inputs / f"{i:02d}.jpg" for i in range(count)]
    for target, (first, _) in zip(targets, pairs, strict=True):
        os.link(first, target)

    output = tmp_path / "out"
    with _swapping(targets, pairs):
        report = pipeline.run([inputs], output, client=cluster_client)
    rows = read_rows(report.manifest)
    assert len(rows) == count
    for row in rows:
        if row["status"] == "failed":
            assert row["failure"]["code"] == "changed_during_batch", row
            assert row["source"] in row["failure"]["message"]
            assert "changed" in row["failure"]["message"]
    _assert_every_folder_holds_its_own_content(output, reference)

    # Once the files hold still, a rerun processes each one's final content.
    rerun = read_rows(pipeline.run([inputs], output, client=cluster_client).manifest)
    assert [row["status"] for row in rerun] == ["ok"] * count
    for row in rerun:
        assert row["sha256"] == hashlib.sha256(Path(row["source"]).read_bytes()).hexdigest()
    _assert_every_folder_holds_its_own_content(output, reference)


def _through_the_steps(
    source: Path, config: PipelineConfig, root: OutputRoot, between: list[bytes]
) -> ImageResult:
    """One image through the four task functions in this process, its file replaced by
    ``between[0]`` after hashing and by ``between[1]`` after validating."""
    hashed = hash_chunk([(0, str(source))])
    source.write_bytes(between[0])
    validated = validate_chunk(hashed, frozenset({0}), config, root)
    source.write_bytes(between[1])
    (result,) = encode_chunk(resize_chunk(validated, config), config, root)
    return result


def test_content_other_than_the_hashed_bytes_is_never_decoded(tmp_path: Path) -> None:
    first, second = _photos(tmp_path / "in", range(2))
    other = second.read_bytes()
    root = OutputRoot(str(tmp_path / "out"))
    result = _through_the_steps(first, PipelineConfig(), root, [other, other])
    assert result.status == "failed"
    assert result.failure is not None
    assert result.failure.code == "changed_during_batch"
    assert str(first) in result.failure.message
    assert not (tmp_path / "out").exists() or _image_folders(tmp_path / "out") == []


def test_the_limits_hold_for_the_bytes_decoded_not_only_the_bytes_validated(
    tmp_path: Path,
) -> None:
    """Hashed a large picture, validated a small one swapped in, then the large one is back:
    its digest matches, but it must be refused as if it had been validated."""
    large = tmp_path / "large.png"
    photo_like(1600, 1200, seed=1).save(large)
    small = tmp_path / "small.png"
    photo_like(64, 48, seed=2).save(small)
    config = PipelineConfig(max_pixels=100_000, max_decoded_pixels=100_000)
    source = tmp_path / "in.png"
    source.write_bytes(large.read_bytes())
    result = _through_the_steps(
        source, config, OutputRoot(str(tmp_path / "out")), [small.read_bytes(), large.read_bytes()]
    )
    assert result.status == "failed"
    assert result.failure is not None
    assert result.failure.code == "too_many_pixels"


# --- 2. two settings, one output root ----------------------------------------------------------


def test_other_settings_never_change_the_files_an_earlier_manifest_lists(
    cluster_client: Client, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "in", range(3))
    output = tmp_path / "out"
    first = pipeline.run(photos, output, client=cluster_client)
    listed = _listed_files(first.manifest, output)

    other = PipelineConfig(
        sizes=(
            Size(name="thumbnail", width=300, height=300),
            Size(name="medium", width=500, height=500),
        ),
        encodings=(Encoding(format="jpeg", quality=40),),
    )
    second = pipeline.run(photos, output, config=other, client=cluster_client)
    assert [row["status"] for row in read_rows(second.manifest)] == ["ok"] * 3
    assert set(_listed_files(second.manifest, output)).isdisjoint(listed)
    assert _listed_files(first.manifest, output) == listed

    # Equal settings again: everything reused, nothing written.
    again = read_rows(pipeline.run(photos, output, client=cluster_client).manifest)
    assert all(row["reused"] for row in again)
    assert _listed_files(first.manifest, output) == listed


def test_an_avif_setting_leaves_the_jpeg_and_webp_in_place(
    cluster_client: Client, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "in", range(2))
    output = tmp_path / "out"
    formats = ("jpeg:85", "webp:80", "avif:60")
    slow = PipelineConfig(encodings=tuple(Encoding.parse(text) for text in formats))
    fast = PipelineConfig(
        encodings=(*slow.encodings[:2], Encoding(format="avif", quality=60, avif_speed=10))
    )
    first = read_rows(pipeline.run(photos, output, config=slow, client=cluster_client).manifest)
    stamps = {p: p.stat().st_mtime_ns for p in output.rglob("*") if p.suffix in (".jpg", ".webp")}
    second = read_rows(pipeline.run(photos, output, config=fast, client=cluster_client).manifest)

    for before, after in zip(first, second, strict=True):
        kept = [o for o in before["outputs"] if o["format"] != "avif"]
        assert [o for o in after["outputs"] if o["format"] != "avif"] == kept
        avif_before = {o["path"] for o in before["outputs"] if o["format"] == "avif"}
        avif_after = {o["path"] for o in after["outputs"] if o["format"] == "avif"}
        assert avif_before.isdisjoint(avif_after)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # reused, not written again


# --- 3. an output root inside the input folder -------------------------------------------------


def test_an_output_root_inside_the_inputs_is_never_read_as_input(
    cluster_client: Client, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    photos = _photos(inputs, range(3))
    for _ in range(2):
        report = pipeline.run([inputs], inputs / "out", client=cluster_client)
        rows = read_rows(report.manifest)
        assert sorted(row["source"] for row in rows) == sorted(str(p) for p in photos)


def test_expanding_inputs_leaves_out_the_output_root(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    photos = _photos(inputs, range(2))
    for name in ("out/ab/abc/thumbnail.jpg", "out/manifests/x.jsonl", "outer.jpg"):
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_bytes(b"x")
    linked = tmp_path / "link-to-out"
    linked.symlink_to(inputs / "out")
    expected = sorted([*map(str, photos), str(inputs / "outer.jpg")])
    for output in (inputs / "out", linked, f"{inputs}/./out/"):
        found = expand_inputs([inputs, inputs / "out" / "manifests" / "x.jsonl"], output)
        assert sorted(item.source for item in found) == expected


def test_expanding_url_inputs_leaves_out_the_output_root() -> None:
    import fsspec

    filesystem = fsspec.filesystem("memory")
    base = "memory://thumbflow-tests/integrity"
    for name in ("in/a.jpg", "in/out/ab/abc/thumbnail.jpg", "in/out/manifests/x.jsonl"):
        filesystem.pipe(f"{base}/{name}", b"x")
    try:
        found = expand_inputs([f"{base}/in"], f"{base}/in/out/")
        assert [item.source for item in found] == ["memory:///thumbflow-tests/integrity/in/a.jpg"]
    finally:
        filesystem.rm(base, recursive=True)


# --- 4. reuse checks what it reuses ------------------------------------------------------------


def test_a_damaged_derivative_is_made_again(cluster_client: Client, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "in", range(3))
    output = tmp_path / "out"
    first = pipeline.run(photos, output, client=cluster_client)
    listed = _listed_files(first.manifest, output)
    first_rows = read_rows(first.manifest)
    truncated = output / first_rows[0]["outputs"][0]["path"]
    truncated.write_bytes(truncated.read_bytes()[:100])
    flipped = output / first_rows[1]["outputs"][-1]["path"]
    damaged = bytearray(flipped.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF  # same size, other content
    flipped.write_bytes(bytes(damaged))

    rerun = pipeline.run(photos, output, client=cluster_client)
    rows = read_rows(rerun.manifest)
    assert [row["status"] for row in rows] == ["ok"] * 3
    assert [row["reused"] for row in rows] == [False, False, True]
    assert [row["outputs"] for row in rows] == [row["outputs"] for row in first_rows]
    assert _listed_files(rerun.manifest, output) == listed


def test_reused_images_are_held_to_the_current_limits(
    cluster_client: Client, tmp_path: Path
) -> None:
    photos = _photos(tmp_path / "in", range(2))
    output = tmp_path / "out"
    pipeline.run(photos, output, client=cluster_client)
    stricter = PipelineConfig(max_pixels=SMALL[0] * SMALL[1] - 1)
    rows = read_rows(pipeline.run(photos, output, config=stricter, client=cluster_client).manifest)
    for row in rows:
        assert row["status"] == "failed"
        assert row["failure"]["code"] == "too_many_pixels"
        assert row["reused"] is False
        assert row["outputs"] == []


def test_outputs_made_from_part_of_a_file_are_not_reused_by_a_batch_that_refuses_that(
    cluster_client: Client, tmp_path: Path
) -> None:
    (photo,) = _photos(tmp_path / "whole", range(1))
    truncated = tmp_path / "in" / "truncated.jpg"
    truncated.parent.mkdir()
    truncated.write_bytes(photo.read_bytes()[: photo.stat().st_size * 2 // 3])
    output = tmp_path / "out"
    accepting = PipelineConfig(accept_truncated=True)
    (first,) = read_rows(
        pipeline.run([truncated], output, config=accepting, client=cluster_client).manifest
    )
    assert first["status"] == "ok"
    (refused,) = read_rows(pipeline.run([truncated], output, client=cluster_client).manifest)
    assert refused["status"] == "failed"
    assert refused["failure"]["code"] == "truncated"
    assert refused["reused"] is False
