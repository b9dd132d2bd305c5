"""encode: every format from every working mode opens as that format at that size; alpha is
composited for JPEG and kept for WebP/AVIF; no metadata leaks; quality trades bytes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from pipeline.config import Encoding, PipelineConfig
from pipeline.samples import photo_like
from pipeline.stages.encode import encode
from pipeline.stages.metadata import Carried
from pipeline.stages.resize import render_sizes
from pipeline.stages.validate import read_header

WHITE = (255, 255, 255)
PILLOW_FORMAT = {"jpeg": "JPEG", "webp": "WEBP", "avif": "AVIF"}


def opened(encoded: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(encoded))
    image.load()
    return image


def working_image(mode: str) -> Image.Image:
    """A 160x120 photo-like image whose alpha (where it has one) is an ellipse."""
    return photo_like(160, 120, seed=8, mode="RGBA").convert(mode)


def tagged_jpeg(path: Path, mode: str = "RGB") -> Path:
    """A JPEG carrying what a phone writes: EXIF with camera and GPS tags, and an ICC profile."""
    exif = Image.Exif()
    exif[0x010F] = "thumbflow test camera"
    exif.get_ifd(0x8825)[2] = (51.0, 30.0, 0.0)  # GPSLatitude
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo_like(640, 480, seed=8).convert(mode).save(
        path, "JPEG", exif=exif.tobytes(), icc_profile=profile, comment=b"thumbflow test camera"
    )
    return path


def assert_no_metadata(encoded: bytes) -> None:
    image = opened(encoded)
    assert "exif" not in image.info
    assert "icc_profile" not in image.info
    assert "comment" not in image.info
    assert not image.getexif()
    assert b"thumbflow test camera" not in encoded


@pytest.mark.parametrize(
    ("source_mode", "expected_modes"),
    [
        pytest.param("L", {"jpeg": "L", "webp": "RGB", "avif": "L"}, id="L"),
        pytest.param("LA", {"jpeg": "L", "webp": "RGBA", "avif": "RGBA"}, id="LA"),
        pytest.param("RGB", {"jpeg": "RGB", "webp": "RGB", "avif": "RGB"}, id="RGB"),
        pytest.param("RGBA", {"jpeg": "RGB", "webp": "RGBA", "avif": "RGBA"}, id="RGBA"),
    ],
)
@pytest.mark.parametrize("format_name", ["jpeg", "webp", "avif"])
def test_every_format_from_every_working_mode(format_name, source_mode, expected_modes):
    encoding = Encoding.parse(format_name)
    result = opened(encode(working_image(source_mode), encoding, WHITE))
    assert result.format == PILLOW_FORMAT[format_name]
    assert result.size == (160, 120)
    assert result.mode == expected_modes[format_name]


@pytest.mark.parametrize(
    ("mode", "transparent_pixel", "background", "expected"),
    [
        pytest.param("RGBA", (255, 0, 0, 0), WHITE, WHITE, id="red-on-white"),
        pytest.param("RGBA", (255, 0, 0, 0), (0, 90, 200), (0, 90, 200), id="red-on-blue"),
        pytest.param("LA", (0, 0), WHITE, 255, id="grey-on-white"),
        pytest.param("LA", (255, 0), (30, 60, 90), 60, id="grey-on-mean-of-background"),
    ],
)
def test_jpeg_composites_transparent_pixels_on_the_background(
    mode, transparent_pixel, background, expected
):
    image = Image.new(mode, (64, 48), transparent_pixel)
    result = opened(encode(image, Encoding(format="jpeg", quality=90), background))
    low_high = result.getextrema()
    bands = low_high if isinstance(low_high[0], tuple) else (low_high,)
    wanted = expected if isinstance(expected, tuple) else (expected,)
    for (low, high), value in zip(bands, wanted, strict=True):
        assert value - 3 <= low <= high <= value + 3


@pytest.mark.parametrize("format_name", ["webp", "avif"])
@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_where_the_format_has_it(format_name, mode):
    half_transparent = Image.new("RGBA", (64, 32), (0, 128, 255, 255))
    half_transparent.paste((0, 128, 255, 0), (0, 0, 32, 32))
    image = half_transparent.convert(mode)
    result = opened(encode(image, Encoding.parse(format_name), WHITE))
    assert result.mode == "RGBA"
    assert result.getpixel((5, 5))[3] <= 3
    assert result.getpixel((58, 5))[3] >= 252


@pytest.mark.parametrize("format_name", ["jpeg", "webp", "avif"])
def test_no_exif_or_icc_from_the_source_image_info(tmp_path, format_name):
    with Image.open(tagged_jpeg(tmp_path / "phone.jpg")) as source:
        source.load()
        assert {"exif", "icc_profile", "comment"} <= set(source.info)
        encoded = encode(source, Encoding.parse(format_name), WHITE)
    assert_no_metadata(encoded)


@pytest.mark.parametrize("source_mode", ["RGB", "L"])
@pytest.mark.parametrize("format_name", ["jpeg", "webp", "avif"])
def test_no_exif_or_icc_in_derivatives_rendered_from_a_tagged_photo(
    tmp_path, format_name, source_mode
):
    path = tagged_jpeg(tmp_path / "phone.jpg", source_mode)
    config = PipelineConfig()
    header = read_header(str(path), path.stat().st_size, config)
    for image in render_sizes(str(path), header, config).values():
        assert_no_metadata(encode(image, Encoding.parse(format_name), config.background))


@pytest.mark.parametrize("format_name", ["jpeg", "webp", "avif"])
def test_lower_quality_gives_fewer_bytes(format_name):
    image = photo_like(320, 240, seed=8)
    low = encode(image, Encoding.parse(f"{format_name}:30"), WHITE)
    high = encode(image, Encoding.parse(f"{format_name}:95"), WHITE)
    assert len(low) < len(high)


def xmp_of(size_bytes: int) -> bytes:
    head = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><!-- editing history: '
    tail = b" --></x:xmpmeta>"
    return head + b"h" * (size_bytes - len(head) - len(tail)) + tail


@pytest.mark.parametrize("format_name", ["jpeg", "webp", "avif"])
def test_kept_xmp_travels(format_name):
    xmp = xmp_of(20_000)
    encoded = encode(working_image("RGB"), Encoding.parse(format_name), WHITE, Carried(xmp=xmp))
    assert opened(encoded).info.get("xmp") == xmp


def test_xmp_longer_than_a_jpeg_segment_is_left_out_of_the_jpeg_only():
    """A PNG's XMP can be any length; a JPEG segment holds 64 KB. The JPEG is written without
    it (not failed), the WebP keeps it."""
    xmp = xmp_of(90_000)
    carried = Carried(exif=Image.Exif().tobytes(), xmp=xmp)
    jpeg = opened(encode(working_image("RGB"), Encoding.parse("jpeg"), WHITE, carried))
    webp = opened(encode(working_image("RGB"), Encoding.parse("webp"), WHITE, carried))
    assert "xmp" not in jpeg.info
    assert webp.info.get("xmp") == xmp
