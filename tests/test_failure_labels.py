"""Failure labels that tell the truth, and warnings kept out of the terminal: real files in
formats thumbflow does not read by default, non-images that look like images, an AVIF over
libavif's size limit, copies of failed inputs, and images Pillow warns about. Through the stage
and task functions (fast), one batch on the session LocalCluster, and the CLI."""

from __future__ import annotations

import io
import struct
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

import pipeline
from pipeline.config import EXTRA_FORMATS, PipelineConfig
from pipeline.driver.dedup import DuplicateTracker
from pipeline.errors import ConfigError, Failure, ImageError
from pipeline.results import ImageResult
from pipeline.stages.validate import ImageHeader, header_of_bytes, read_header
from pipeline.storage import OutputRoot
from pipeline.worker.image_warnings import MAX_LENGTH, MAX_WARNINGS, collecting, merged
from pipeline.worker.tasks import encode_chunk, hash_chunk, resize_chunk, validate_chunk
from tests.commands import THUMBFLOW, command_env
from tests.format_files import (
    HEIGHT,
    WIDTH,
    avif_claiming,
    corrupt_exif_jpeg,
    cut_avi_bytes,
    extra_format_files,
    psd_bytes,
    saved,
    wav_bytes,
)
from tests.helpers import COUNTERS, manifest_counts, read_rows, redis_counts

EXTRA_FILES = extra_format_files()
EXIF_WARNING = "Tag data larger than file. Skipping tag 271"


def outcome(name: str, data: bytes, config: PipelineConfig | None = None) -> ImageHeader | Failure:
    try:
        return header_of_bytes(name, data, config or PipelineConfig())
    except ImageError as refused:
        return refused.failure


def through_the_steps(
    path: Path, root: OutputRoot, config: PipelineConfig, index: int = 0
) -> ImageResult:
    """One image through the worker's four steps, in this process (no Dask)."""
    hashed = hash_chunk([(index, str(path))])
    validated = validate_chunk(hashed, frozenset({index}), config, root)
    (result,) = encode_chunk(resize_chunk(validated, config), config, root)
    return result


def first_size() -> Any:
    """The thumbnail alone: enough to run every step, for tests that run many images."""
    return PipelineConfig().sizes[:1]


def printable_ppm() -> bytes:
    """A binary PPM whose pixel bytes happen to be printable: its whole start reads as text."""
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (65, 66, 67)).save(buffer, "PPM")
    assert all(32 <= byte < 127 or byte in b"\n" for byte in buffer.getvalue()[:32])
    return buffer.getvalue()


def test_every_format_that_can_be_allowed_has_a_real_file_here() -> None:
    assert {name for name, _, _ in EXTRA_FILES} == set(EXTRA_FORMATS)


@pytest.mark.parametrize(("format_name", "file_name", "data"), EXTRA_FILES, ids=lambda v: v)
def test_an_image_in_a_format_not_allowed_is_unsupported_and_named(format_name, file_name, data):
    failure = outcome(file_name, data)
    assert isinstance(failure, Failure), failure
    assert failure.code == "unsupported_format", failure
    assert f"{file_name}: an image in {format_name} format (" in failure.message
    assert f"--allow-format {format_name}" in failure.message


def test_a_binary_ppm_that_starts_like_text_is_still_a_ppm() -> None:
    failure = outcome("printable.ppm", printable_ppm())
    assert isinstance(failure, Failure)
    assert (failure.code, "a text file" in failure.message) == ("unsupported_format", False)
    assert "PPM format (Pbmplus image)" in failure.message


def test_a_format_that_cannot_be_allowed_is_named_without_offering_it() -> None:
    failure = outcome("spider.img", saved("SPIDER", "F"))
    assert isinstance(failure, Failure)
    assert failure.code == "unsupported_format"
    assert "an image in SPIDER format" in failure.message
    assert "--allow-format" not in failure.message
    assert "it reads JPEG, PNG" in failure.message
    with pytest.raises(ConfigError, match="cannot allow format 'SPIDER'"):
        PipelineConfig(allow_formats=("SPIDER",))


def test_a_psd_whose_header_holds_a_megabyte_of_resources_is_still_named() -> None:
    plain = psd_bytes()
    resource = b"8BIM" + struct.pack(">HHI", 4000, 0, 1 << 20) + bytes(1 << 20)
    # After the 26-byte header and the empty colour mode section: the resources section.
    data = plain[:30] + struct.pack(">I", len(resource)) + resource + plain[34:]
    failure = outcome("layers.psd", data)
    assert isinstance(failure, Failure)
    assert "an image in PSD format (Adobe Photoshop)," in failure.message


def test_naming_a_large_text_file_reads_only_its_start(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"note to self: water the plants\n" * (1 << 20))  # 31 MB of lines
    started = time.perf_counter()
    with pytest.raises(ImageError) as refused:
        read_header(str(path), path.stat().st_size, PipelineConfig())
    assert refused.value.failure.message == f"{path}: not an image (a text file)"
    # Parsing every line as a header would take seconds: the IMT opener reads "word value"
    # lines for as long as they come.
    assert time.perf_counter() - started < 1.5


def test_bigtiff_is_read_as_tiff() -> None:
    header = outcome("big.tif", saved("TIFF", big_tiff=True))
    assert header == ImageHeader("TIFF", "RGB", WIDTH, HEIGHT, 1)


@pytest.mark.parametrize(
    ("file_name", "data", "description"),
    [
        pytest.param("voice.wav", wav_bytes(), "a WAV audio file", id="wav"),
        pytest.param("clip.avi", cut_avi_bytes(), "an AVI video", id="cut-avi"),
    ],
)
def test_a_riff_file_is_webp_only_if_its_form_says_so(file_name, data, description):
    failure = outcome(file_name, data)
    assert isinstance(failure, Failure)
    assert failure.message == f"{file_name}: not an image ({description})"
    assert failure.code == "not_an_image"  # not "truncated" for the cut AVI


def test_an_avif_over_libavifs_size_limit_is_refused_as_a_limit() -> None:
    data = avif_claiming(17_000, 17_000)
    # Under the default limits, thumbflow's own limit on decoded pixels refuses it first...
    default = outcome("huge.avif", data)
    assert isinstance(default, Failure)
    assert default.code == "too_many_pixels"
    assert "17000x17000 AVIF image" in default.message
    assert "max_decoded_pixels limit" in default.message
    # ...and with thumbflow's limits raised, libavif's own, which no setting raises.
    raised = PipelineConfig(max_pixels=10**9, max_decoded_pixels=10**9)
    over = outcome("huge.avif", data, raised)
    assert isinstance(over, Failure)
    assert over.code == "too_many_pixels"
    assert "over libavif's own limit of 268,435,456 pixels" in over.message
    # Exactly at libavif's limit, the header opens.
    assert isinstance(outcome("large.avif", avif_claiming(16_384, 16_384), raised), ImageHeader)


@pytest.mark.parametrize(("format_name", "file_name", "data"), EXTRA_FILES, ids=lambda v: v)
def test_an_allowed_format_gives_derivatives(tmp_path, format_name, file_name, data):
    path = tmp_path / file_name
    path.write_bytes(data)
    config = PipelineConfig(allow_formats=(format_name.lower(),))
    result = through_the_steps(path, OutputRoot(str(tmp_path / "out")), config)
    assert (result.status, result.failure) == ("ok", None)
    with Image.open(path) as source:
        width, height = source.size
    assert len(result.outputs) == len(config.sizes) * len(config.encodings)
    for output in result.outputs:
        with Image.open(tmp_path / "out" / output.path) as derivative:
            derivative.load()
            assert derivative.size == (output.width, output.height)
        assert max(output.width / width, output.height / height) <= 1  # never upscaled


def test_allowing_a_format_changes_no_output_name() -> None:
    assert PipelineConfig(allow_formats=("TGA", "PPM")).fingerprint == PipelineConfig().fingerprint


def test_pillow_warnings_go_to_the_row_and_not_to_stderr(tmp_path, capfd) -> None:
    path = tmp_path / "camera.jpg"
    path.write_bytes(corrupt_exif_jpeg())
    root = OutputRoot(str(tmp_path / "out"))
    first = through_the_steps(path, root, PipelineConfig(), index=0)
    again = through_the_steps(path, root, PipelineConfig(sizes=first_size()), index=1)
    assert first.status == "ok"
    assert first.warnings == (EXIF_WARNING,)  # warned at validate and at decode: kept once
    assert again.warnings == (EXIF_WARNING,)  # the same text again for the next image
    assert "Tag data" not in capfd.readouterr().err
    assert first.to_json()["warnings"] == [EXIF_WARNING]


def test_warnings_stay_with_the_image_of_the_thread_that_raised_them(tmp_path) -> None:
    """Two threads of one worker, one image each at a time: catch_warnings would swap the
    process-wide hooks under the other thread; each image must get its own warnings only."""
    warned, clean = tmp_path / "warned.jpg", tmp_path / "clean.jpg"
    warned.write_bytes(corrupt_exif_jpeg())
    clean.write_bytes(saved("JPEG"))
    root, config = OutputRoot(str(tmp_path / "out")), PipelineConfig(sizes=first_size())
    results: dict[str, list[ImageResult]] = {"warned": [], "clean": []}
    start = threading.Barrier(2)

    def work(name: str, path: Path) -> None:
        start.wait()
        for index in range(12):
            results[name].append(through_the_steps(path, root, config, index))

    threads = [threading.Thread(target=work, args=item) for item in (("warned", warned),)]
    threads.append(threading.Thread(target=work, args=("clean", clean)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.warnings for r in results["warned"]] == [(EXIF_WARNING,)] * 12
    assert [r.warnings for r in results["clean"]] == [()] * 12


def test_a_row_keeps_a_few_short_warnings_each_once() -> None:
    with collecting() as warned:
        for number in range(500):  # as a TIFF full of damaged tags would
            text = f"tag {number % 30} damaged: " + "x" * 300
            warnings.warn_explicit(text, UserWarning, "TiffImagePlugin.py", 1, module="PIL.Tiff")
    kept = merged((), warned)
    assert len(kept) == MAX_WARNINGS
    assert [text[: text.index(":")] for text in kept] == [f"tag {n} damaged" for n in range(10)]
    assert all(len(text) <= MAX_LENGTH for text in kept)


# ---------------------------------------------------------------------------------------------
# One real batch on the session LocalCluster, with Redis


def mixed_folder(folder: Path, corpus: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {
        "photo": folder / "a_photo.jpg",
        "tga": folder / "b_targa.tga",
        "tga_copy": folder / "c_targa_copy.tga",
        "ppm": folder / "d_greymap.pgm",
        "wav": folder / "e_voice.wav",
        "avi": folder / "f_clip.avi",
        "truncated": folder / "g_partial.jpg",
        "truncated_copy": folder / "h_partial_again.jpg",
        "warned": folder / "i_camera.jpg",
        "avif": folder / "j_huge.avif",
    }
    photo = (corpus / "photos" / "kodak_dc240.jpg").read_bytes()
    files["photo"].write_bytes(photo)
    targa = saved("TGA")  # photo_like adds fresh noise each time: the copy must be copied
    files["tga"].write_bytes(targa)
    files["tga_copy"].write_bytes(targa)
    files["ppm"].write_bytes(saved("PPM", "L"))
    files["wav"].write_bytes(wav_bytes())
    files["avi"].write_bytes(cut_avi_bytes())
    files["truncated"].write_bytes(photo[: len(photo) // 2])
    files["truncated_copy"].write_bytes(photo[: len(photo) // 2])
    files["warned"].write_bytes(corrupt_exif_jpeg())
    files["avif"].write_bytes(avif_claiming(17_000, 17_000))
    return files


def by_source(manifest: str) -> dict[str, dict[str, Any]]:
    return {Path(row["source"]).name: row for row in read_rows(manifest)}


def test_a_batch_labels_every_failure_and_counts_copies_of_failures(
    cluster_client, redis_url, corpus, tmp_path
) -> None:
    files = mixed_folder(tmp_path / "in", corpus)
    output = tmp_path / "out"
    handle = pipeline.submit([tmp_path / "in"], output, client=cluster_client, redis_url=redis_url)
    report = handle.result(timeout=180)
    rows = by_source(report.manifest)

    def row(key: str) -> dict[str, Any]:
        return rows[files[key].name]

    assert row("photo")["status"] == "ok"
    assert (row("tga")["status"], row("tga")["failure"]["code"]) == ("failed", "unsupported_format")
    assert "an image in TGA format (Targa)" in row("tga")["failure"]["message"]
    assert "an image in PPM format" in row("ppm")["failure"]["message"]
    assert row("wav")["failure"]["message"].endswith("not an image (a WAV audio file)")
    assert row("avi")["failure"]["code"] == "not_an_image"
    assert row("truncated")["failure"]["code"] == "truncated"
    assert row("avif")["failure"]["code"] == "too_many_pixels"
    # The later of two identical files is a copy of a failed input, and says of which.
    for first, copy in (("tga", "tga_copy"), ("truncated", "truncated_copy")):
        assert row(copy)["status"] == "duplicate_of_failed"
        assert row(copy)["duplicate_of"] == str(files[first])
        assert row(copy)["failure"]["code"] == row(first)["failure"]["code"]
        assert row(copy)["failure"]["message"].startswith(
            f"{files[copy]}: the same bytes as {files[first]}, which failed: "
        )
        assert row(copy)["outputs"] == []
    # Pillow's warning is in its image's row, and only there.
    assert row("warned")["status"] == "ok"
    assert row("warned")["warnings"] == [EXIF_WARNING]
    assert [name for name, r in rows.items() if r["warnings"]] == [files["warned"].name]
    # Counts: a copy of a failed input is a failed input, everywhere the counts are kept.
    status = report.status
    assert (status.ok, status.duplicate, status.failed, status.cancelled) == (2, 0, 8, 0)
    assert manifest_counts(report.manifest) == {name: getattr(status, name) for name in COUNTERS}
    assert redis_counts(redis_url, handle.batch_id) == manifest_counts(report.manifest)
    assert sum(report.failures_by_code.values()) == status.failed
    assert report.failures_by_code == {
        "unsupported_format": 3,
        "not_an_image": 2,
        "truncated": 2,
        "too_many_pixels": 1,
    }
    assert (report.duplicates_of_failed, report.images_with_warnings) == (2, 1)

    # Allowed, the TGA and the PGM give derivatives, and the TGA's copy is a plain duplicate.
    allowed = PipelineConfig(allow_formats=("TGA", "PGM"))
    again = pipeline.submit([tmp_path / "in"], output, config=allowed, client=cluster_client)
    rows = by_source(again.result(timeout=180).manifest)
    assert (row("tga")["status"], row("ppm")["status"]) == ("ok", "ok")
    assert len(row("tga")["outputs"]) == len(allowed.sizes) * len(allowed.encodings)
    assert (row("tga_copy")["status"], row("tga_copy")["duplicate_of"]) == (
        "duplicate",
        str(files["tga"]),
    )
    for output_file in row("ppm")["outputs"]:
        assert (output / output_file["path"]).stat().st_size == output_file["bytes"]


# ---------------------------------------------------------------------------------------------
# The CLI


def thumbflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*THUMBFLOW, *args], capture_output=True, text=True, timeout=180, env=command_env()
    )


def test_an_unknown_format_name_is_one_line_and_exit_2(tmp_path) -> None:
    done = thumbflow("run", str(tmp_path), "-o", str(tmp_path / "out"), "--allow-format", "eps")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "thumbflow: cannot allow format 'eps': the formats thumbflow can add are "
        + ", ".join(EXTRA_FORMATS)
    ]


def test_the_cli_reads_allowed_formats_and_keeps_pillow_quiet(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.tga").write_bytes(saved("TGA"))
    greymap = saved("PPM", "L")
    (folder / "b.pgm").write_bytes(greymap)
    (folder / "c.pgm").write_bytes(greymap)  # a copy of a file that will fail
    (folder / "d.jpg").write_bytes(corrupt_exif_jpeg())
    done = thumbflow(
        "run", str(folder), "-o", str(tmp_path / "out"), "--workers", "1", "--no-progress",
        "--allow-format", "tga",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Tag data" not in done.stderr  # the worker's Pillow warning stayed in the manifest
    assert "ok 2 · duplicate 0 · failed 2 · cancelled 0" in done.stdout
    assert "failures by code: unsupported_format 2" in done.stdout
    assert "failed counts 1 copy of a failed input" in done.stdout
    assert "1 image with warnings" in done.stdout


def test_copies_of_an_image_that_killed_its_worker_say_it_failed() -> None:
    """Its row has no digest (the worker died before returning it); copies that waited for it,
    or come after, are still duplicates of a failed input, not left to end as cancelled."""
    tracker = DuplicateTracker()
    assert tracker.claim(0, "first.jpg", "ab" * 32) is None
    assert tracker.claim(1, "copy.jpg", "ab" * 32) is None  # waits for the first
    died = Failure("resize", "worker_died", "first.jpg: decoding it killed its worker")
    (waited,) = tracker.settle(ImageResult(0, "first.jpg", "failed", failure=died))
    later = tracker.claim(2, "later.jpg", "ab" * 32)
    for row, source in ((waited, "copy.jpg"), (later, "later.jpg")):
        assert row is not None
        assert row.failure is not None
        assert (row.status, row.duplicate_of, row.failure.code) == (
            "duplicate_of_failed",
            "first.jpg",
            "worker_died",
        )
        assert row.failure.message.startswith(f"{source}: the same bytes as first.jpg")
