"""Pillow's process-wide settings under thumbflow's rules: replaced only while thumbflow opens or
decodes, restored afterwards, and the truncation choice kept per thread, so two batches with
different settings can decode side by side in one worker."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from pipeline.config import PipelineConfig
from pipeline.errors import ImageError
from pipeline.samples import photo_like
from pipeline.stages.opening import accepted_formats
from pipeline.stages.resize import decode
from pipeline.stages.validate import read_header


@pytest.fixture
def truncated_jpeg(tmp_path: Path) -> Path:
    path = tmp_path / "partial_download.jpg"
    whole = tmp_path / "whole.jpg"
    photo_like(600, 400, seed=3).save(whole, quality=90)
    content = whole.read_bytes()
    path.write_bytes(content[: len(content) * 2 // 3])
    return path


def decoded(path: Path, config: PipelineConfig) -> str:
    """ "ok", or the failure code of the decode."""
    header = read_header(str(path), path.stat().st_size, config)
    try:
        decode(str(path), header, config)
    except ImageError as failed:
        return failed.failure.code
    return "ok"


def test_accept_truncated_is_an_opt_in(truncated_jpeg):
    assert decoded(truncated_jpeg, PipelineConfig()) == "truncated"
    assert decoded(truncated_jpeg, PipelineConfig(accept_truncated=True)) == "ok"


def test_pillow_globals_are_restored_after_decoding(truncated_jpeg):
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    decoded(truncated_jpeg, PipelineConfig(accept_truncated=True))
    decoded(truncated_jpeg, PipelineConfig())
    after = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    assert after == before


def test_threads_with_different_truncation_settings_do_not_share_them(truncated_jpeg):
    """Pillow's LOAD_TRUNCATED_IMAGES is one global: a thread that accepts truncated files must
    not make another thread's decode accept them (that one would silently get grey rows)."""
    start = threading.Barrier(2)

    def run(accept: bool) -> set[str]:
        start.wait()
        config = PipelineConfig(accept_truncated=accept)
        return {decoded(truncated_jpeg, config) for _ in range(40)}

    with ThreadPoolExecutor(2) as pool:
        accepting, refusing = pool.map(run, [True, False])
    assert accepting == {"ok"}
    assert refusing == {"truncated"}


def test_a_process_wide_setting_still_applies_outside_thumbflow(truncated_jpeg):
    """A notebook that set LOAD_TRUNCATED_IMAGES itself keeps it for its own Pillow calls,
    while thumbflow's decodes follow the batch's setting."""
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        assert decoded(truncated_jpeg, PipelineConfig()) == "truncated"
        with Image.open(truncated_jpeg) as image:
            image.load()  # the notebook's own call: allowed by its own setting
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_accepted_formats_follow_what_this_pillow_reads():
    formats = accepted_formats()
    assert {"JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF"} <= set(formats)
    assert set(formats) <= set(Image.OPEN)
