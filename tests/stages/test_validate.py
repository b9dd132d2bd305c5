"""read_header: what the header of a real file says, and a typed, named refusal for everything
thumbflow must not decode (wrong content, too large, decompression bombs, damaged headers)."""

from __future__ import annotations

import dataclasses
import io
import random
import time
from pathlib import Path

import pytest
from PIL import Image

from pipeline.config import PipelineConfig, Size
from pipeline.errors import Failure, ImageError
from pipeline.samples import photo_like
from pipeline.stages.validate import ImageHeader, describe_start, read_header
from tests.format_files import psd_bytes
from tests.imaging import encoded, jpeg_header, pillow_images_allocated, png_bytes

ORIENTATION_TAG = 0x0112


def header_of(path: Path, config: PipelineConfig | None = None) -> ImageHeader:
    return read_header(str(path), path.stat().st_size, config or PipelineConfig())


def write_image(path: Path, image: Image.Image, orientation: int | None = None) -> Path:
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION_TAG] = orientation
    image.save(path, exif=exif.tobytes())
    return path


def jpeg_bytes(width: int = 640, height: int = 480) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0110] = "thumbflow test camera"
    photo_like(width, height, seed=3).save(buffer, "JPEG", quality=85, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("file_name", "mode", "expected_format", "expected_mode"),
    [
        pytest.param("photo.jpg", "RGB", "JPEG", "RGB", id="jpeg-rgb"),
        pytest.param("scan.jpg", "L", "JPEG", "L", id="jpeg-greyscale"),
        pytest.param("print.jpg", "CMYK", "JPEG", "CMYK", id="jpeg-cmyk"),
        pytest.param("logo.png", "RGBA", "PNG", "RGBA", id="png-rgba"),
        pytest.param("icon.png", "P", "PNG", "P", id="png-palette"),
        pytest.param("grey.png", "LA", "PNG", "LA", id="png-grey-alpha"),
        pytest.param("flat.gif", "RGB", "GIF", "P", id="gif"),
        pytest.param("photo.webp", "RGB", "WEBP", "RGB", id="webp"),
        pytest.param("scan.tif", "RGB", "TIFF", "RGB", id="tiff"),
        pytest.param("old.bmp", "RGB", "BMP", "RGB", id="bmp"),
        pytest.param("photo.avif", "RGB", "AVIF", "RGB", id="avif"),
    ],
)
def test_read_header_of_each_accepted_format(
    tmp_path, file_name, mode, expected_format, expected_mode
):
    path = tmp_path / file_name
    photo_like(120, 80, seed=1).convert(mode).save(path)
    assert header_of(path) == ImageHeader(expected_format, expected_mode, 120, 80, 1)


def test_format_comes_from_the_content_not_the_file_name(tmp_path):
    path = tmp_path / "actually_a_png.jpg"
    photo_like(120, 80, seed=1).save(path, "PNG")
    assert header_of(path).format == "PNG"


@pytest.mark.parametrize(
    ("orientation", "displayed_size"),
    [
        pytest.param(1, (120, 80), id="1-upright"),
        pytest.param(2, (120, 80), id="2-mirrored"),
        pytest.param(3, (120, 80), id="3-upside-down"),
        pytest.param(4, (120, 80), id="4-flipped"),
        pytest.param(5, (80, 120), id="5-transposed"),
        pytest.param(6, (80, 120), id="6-rotated-right"),
        pytest.param(7, (80, 120), id="7-transversed"),
        pytest.param(8, (80, 120), id="8-rotated-left"),
    ],
)
def test_header_size_is_as_displayed_after_exif_orientation(tmp_path, orientation, displayed_size):
    path = write_image(tmp_path / "phone.jpg", photo_like(120, 80, seed=1), orientation)
    header = header_of(path)
    assert (header.width, header.height) == displayed_size
    assert header.orientation == orientation
    assert header.transposed == (orientation >= 5)


@pytest.mark.parametrize(
    "file_name",
    [
        "phone.jpg",
        "phone.png",
        "phone.webp",
        "phone.avif",
        "phone.tif",
    ],
)
def test_orientation_6_swaps_width_and_height_in_every_container(tmp_path, file_name):
    path = write_image(tmp_path / file_name, photo_like(120, 80, seed=1), orientation=6)
    header = header_of(path)
    assert (header.width, header.height) == (80, 120)
    # Pillow turns TIFFs upright itself while loading, so nothing is left for us to apply
    assert header.orientation == (1 if file_name.endswith(".tif") else 6)


@pytest.mark.parametrize(
    "stored_orientation",
    [
        pytest.param(0, id="zero"),
        pytest.param(9, id="nine-out-of-range"),
        pytest.param(None, id="no-tag"),
    ],
)
def test_invalid_or_missing_orientation_is_treated_as_upright(tmp_path, stored_orientation):
    path = write_image(tmp_path / "odd.jpg", photo_like(120, 80, seed=1), stored_orientation)
    assert header_of(path) == ImageHeader("JPEG", "RGB", 120, 80, 1)


# (file name, content, expected code, words the message must contain)
REFUSED_CONTENT = [
    pytest.param(
        "notes.jpg",
        b"<!DOCTYPE html>\n<html><title>404 Not Found</title></html>\n",
        "not_an_image",
        "an HTML page",
        id="html-page-named-jpg",
    ),
    pytest.param(
        "report.jpg",
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
        "not_an_image",
        "a PDF document",
        id="pdf-document",
    ),
    pytest.param(
        "noise.jpg",
        random.Random(3).randbytes(4096),
        "not_an_image",
        "binary data",
        id="random-bytes",
    ),
    pytest.param(
        "deploy.png",
        b"#!/bin/sh\nrm -rf /tmp/cache\n",
        "not_an_image",
        "a script",
        id="shell-script",
    ),
    pytest.param(
        "photos.jpg",
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(64),
        "not_an_image",
        "a ZIP archive",
        id="zip-archive",
    ),
    pytest.param(
        "drawing.png",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>\n',
        "not_an_image",
        "an XML/SVG document",
        id="svg-drawing",
    ),
    pytest.param(
        "layers.psd", psd_bytes(), "unsupported_format", "PSD format (Adobe Photoshop)", id="psd"
    ),
    pytest.param(
        "favicon.ico",
        b"\x00\x00\x01\x00\x01\x00\x10\x10\x00\x00\x01\x00\x20\x00" + bytes(64),
        "unsupported_format",
        "ICO format (Windows Icon) that ends early",
        id="ico-icon-cut-short",
    ),
    pytest.param(
        "iphone.heic",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        "unsupported_format",
        "a HEIF image",
        id="heif-image",
    ),
]


@pytest.mark.parametrize(("file_name", "content", "code", "description"), REFUSED_CONTENT)
def test_refused_content_has_a_stable_code_and_says_what_the_file_is(
    tmp_path, file_name, content, code, description
):
    path = tmp_path / file_name
    path.write_bytes(content)
    with pytest.raises(ImageError) as refused:
        header_of(path)
    assert refused.value.failure.step == "validate"
    assert refused.value.failure.code == code
    assert str(path) in refused.value.failure.message
    assert description in refused.value.failure.message


def test_empty_file_is_refused_before_it_is_opened(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError) as refused:
        read_header(str(path), 0, PipelineConfig())
    assert refused.value.failure.code == "empty_file"
    assert str(path) in refused.value.failure.message


def test_file_over_max_file_bytes_is_refused_with_the_limit_in_the_message(tmp_path):
    path = tmp_path / "huge.jpg"
    path.write_bytes(jpeg_bytes())
    config = PipelineConfig(max_file_bytes=1000)
    with pytest.raises(ImageError) as refused:
        read_header(str(path), path.stat().st_size, config)
    assert refused.value.failure.code == "file_too_large"
    assert str(path) in refused.value.failure.message
    assert "max_file_bytes" in refused.value.failure.message


def test_png_claiming_100000x100000_is_refused_from_the_header_alone(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(100_000, 100_000))
    allocated_before = pillow_images_allocated()
    started = time.perf_counter()
    with pytest.raises(ImageError) as refused:
        header_of(path)
    assert time.perf_counter() - started < 0.5
    assert pillow_images_allocated() == allocated_before
    assert refused.value.failure.code == "too_many_pixels"
    assert str(path) in refused.value.failure.message


@pytest.mark.parametrize(
    ("width", "height", "max_pixels"),
    [
        pytest.param(20_000, 5_000, 150_000_000, id="100mp-under-the-default-limit"),
        pytest.param(1000, 1000, 1_000_000, id="exactly-at-the-limit"),
    ],
)
def test_header_within_max_pixels_is_accepted(tmp_path, width, height, max_pixels):
    path = tmp_path / "large.png"
    path.write_bytes(png_bytes(width, height))
    header = header_of(path, PipelineConfig(max_pixels=max_pixels))
    assert (header.width, header.height) == (width, height)


@pytest.mark.parametrize(
    ("width", "height", "max_pixels"),
    [
        pytest.param(20_000, 5_000, 50_000_000, id="100mp-over-a-50mp-limit"),
        pytest.param(1001, 1000, 1_000_000, id="one-column-over-the-limit"),
    ],
)
def test_header_over_max_pixels_is_refused_with_the_limit_in_the_message(
    tmp_path, width, height, max_pixels
):
    path = tmp_path / "large.png"
    path.write_bytes(png_bytes(width, height))
    with pytest.raises(ImageError) as refused:
        header_of(path, PipelineConfig(max_pixels=max_pixels))
    assert refused.value.failure.code == "too_many_pixels"
    assert str(path) in refused.value.failure.message
    assert "max_pixels" in refused.value.failure.message


def test_oversized_png_with_pixel_data_is_refused_without_decoding_it(tmp_path):
    path = tmp_path / "bomb.png"
    width = height = 3000
    path.write_bytes(png_bytes(width, height, pixels=bytes((width + 1) * height)))
    allocated_before = pillow_images_allocated()
    with pytest.raises(ImageError) as refused:
        header_of(path, PipelineConfig(max_pixels=1_000_000))
    assert refused.value.failure.code == "too_many_pixels"
    assert pillow_images_allocated() == allocated_before


def test_max_pixels_above_pillows_bomb_limit_is_honoured(tmp_path):
    path = tmp_path / "panorama.png"
    path.write_bytes(png_bytes(15_000, 15_000))  # 225 MP
    config = PipelineConfig(max_pixels=300_000_000, max_decoded_pixels=300_000_000)
    header = header_of(path, config)
    assert (header.width, header.height) == (15_000, 15_000)


def header_or_failure(path: Path, config: PipelineConfig | None = None) -> ImageHeader | Failure:
    try:
        return header_of(path, config)
    except ImageError as refused:
        return refused.failure


@pytest.mark.parametrize("kept_bytes", [100, 200, 300, 500, 800, 2000, 8000])
def test_jpeg_cut_early_gives_a_typed_failure_or_a_clean_header(tmp_path, kept_bytes):
    path = tmp_path / "partial_download.jpg"
    path.write_bytes(jpeg_bytes()[:kept_bytes])
    outcome = header_or_failure(path)
    if isinstance(outcome, ImageHeader):
        assert (outcome.format, outcome.width, outcome.height) == ("JPEG", 640, 480)
    else:
        assert outcome.step == "validate"
        assert outcome.code in ("truncated", "decode_error")
        assert str(path) in outcome.message


def test_jpeg_cut_inside_its_header_is_reported_as_truncated(tmp_path):
    path = tmp_path / "partial_download.jpg"
    path.write_bytes(jpeg_bytes()[:300])
    with pytest.raises(ImageError) as refused:
        header_of(path)
    assert refused.value.failure.code == "truncated"


@pytest.mark.parametrize(
    ("head", "description"),
    [
        pytest.param(b"%PDF-1.4\n", "a PDF document", id="pdf"),
        pytest.param(b"\x89PNG\r\n\x1a\n", "a PNG image", id="png"),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF", "a JPEG image", id="jpeg"),
        pytest.param(b"II*\x00\x08\x00\x00\x00", "a TIFF image", id="tiff-little-endian"),
        pytest.param(b"MM\x00*\x00\x00\x00\x08", "a TIFF image", id="tiff-big-endian"),
        pytest.param(b"\x1f\x8b\x08\x00", "a gzip archive", id="gzip"),
        pytest.param(b"RIFF\x24\x00\x00\x00WAVEfmt ", "a WAV audio file", id="riff-wave"),
        pytest.param(b"RIFF\x24\x00\x00\x00AVI LIST", "an AVI video", id="riff-avi"),
        pytest.param(b"RIFF\x24\x00\x00\x00WEBPVP8 ", "a WebP image", id="riff-webp"),
        pytest.param(b"\x00\x00\x00\x18ftypmif1", "a HEIF image", id="heif-mif1"),
        pytest.param(b"  \n<HTML><body>", "an HTML page", id="html-after-whitespace"),
        pytest.param(b'<?xml version="1.0"?>', "an XML/SVG document", id="xml"),
        pytest.param(b"<svg width='1'>", "an XML/SVG document", id="svg"),
        pytest.param(b"#!/usr/bin/env python\n", "a script", id="script"),
    ],
)
def test_describe_start_names_well_known_content(head, description):
    assert describe_start(head) == description


@pytest.mark.parametrize(
    ("head", "description"),
    [
        pytest.param(b"hello world", "a text file", id="plain-text"),
        pytest.param(b"password=hunter2\n", "a text file", id="text-that-may-be-private"),
        pytest.param(b"\x00\x01abc\x7fxyz", "binary data", id="unprintable-bytes"),
        pytest.param(b"", "an empty file", id="nothing"),
    ],
)
def test_describe_start_says_what_unknown_content_is_without_quoting_it(head, description):
    # The file may be a link to something private: its bytes must not reach the manifest.
    assert describe_start(head) == description


# (file content, config changes, the limit named in the refusal or None when accepted)
DECODED_PIXEL_CASES = [
    pytest.param(
        jpeg_header(16_320, 12_240), {}, None, id="200mp-baseline-jpeg-decodes-at-an-eighth"
    ),
    pytest.param(
        jpeg_header(16_320, 12_240, progressive=True),
        {},
        "max_decoded_pixels",
        id="200mp-progressive-jpeg-keeps-every-coefficient",
    ),
    pytest.param(jpeg_header(65_535, 65_535), {}, "max_pixels", id="4-gigapixel-jpeg"),
    pytest.param(png_bytes(12_000, 10_000), {}, "max_decoded_pixels", id="120mp-png"),
    pytest.param(png_bytes(10_000, 9_000), {}, None, id="90mp-png"),
    pytest.param(
        jpeg_header(16_320, 12_240),
        {
            "sizes": (Size(name="poster", width=8000, height=8000),),
            "max_decoded_pixels": 40_000_000,
        },
        "max_decoded_pixels",
        id="a-larger-size-needs-a-larger-decode",
    ),
]


@pytest.mark.parametrize(("content", "changes", "limit"), DECODED_PIXEL_CASES)
def test_pixel_limits_count_header_pixels_and_what_decoding_would_allocate(
    tmp_path, content, changes, limit
):
    path = tmp_path / "claimed.img"
    path.write_bytes(content)
    allocated_before = pillow_images_allocated()
    outcome = header_or_failure(path, dataclasses.replace(PipelineConfig(), **changes))
    assert pillow_images_allocated() == allocated_before
    if limit is None:
        assert isinstance(outcome, ImageHeader), outcome
    else:
        assert isinstance(outcome, Failure), outcome
        assert outcome.code == "too_many_pixels"
        assert f"the {limit} limit" in outcome.message


def animation(format_name: str, frames: int) -> bytes:
    pictures = [Image.new("RGB", (24, 16), (i * 20 % 256, 90, 160)) for i in range(frames)]
    if format_name == "GIF":
        pictures = [picture.convert("P") for picture in pictures]
    return encoded(pictures[0], format_name, save_all=True, append_images=pictures[1:])


@pytest.mark.parametrize("format_name", ["GIF", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize(("frames", "refused"), [(12, True), (10, False)])
def test_more_frames_than_max_frames_is_refused(tmp_path, format_name, frames, refused):
    path = tmp_path / f"animation.{format_name.lower()}"
    path.write_bytes(animation(format_name, frames))
    outcome = header_or_failure(path, PipelineConfig(max_frames=10))
    if refused:
        assert isinstance(outcome, Failure), outcome
        assert outcome.code == "too_many_frames"
        assert "max_frames" in outcome.message
    else:
        assert isinstance(outcome, ImageHeader), outcome


def test_webp_cut_short_is_reported_as_truncated_not_damaged(tmp_path):
    content = encoded(photo_like(200, 150, seed=2), "WEBP")
    path = tmp_path / "partial.webp"
    path.write_bytes(content[: len(content) // 2])
    outcome = header_or_failure(path)
    assert isinstance(outcome, Failure), outcome
    assert outcome.code == "truncated"
    assert f"declares {len(content):,} bytes" in outcome.message


def test_damaged_avif_is_named_as_an_avif_image(tmp_path):
    content = encoded(photo_like(64, 48, seed=2), "AVIF")
    path = tmp_path / "damaged.avif"
    path.write_bytes(content[:40] + bytes(200))
    outcome = header_or_failure(path)
    assert isinstance(outcome, Failure), outcome
    assert outcome.code == "decode_error"
    assert "an AVIF image" in outcome.message
