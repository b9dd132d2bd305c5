"""Encode one derivative, with exactly the metadata it is given: none unless the config keeps it.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

Nothing is taken from ``image.info``: EXIF, XMP, ICC profile (and JPEG's comment) are passed to
the encoder explicitly, empty when not kept, because some encoders would otherwise copy what they
find in ``info`` (AVIF a profile, JPEG a comment), and a GPS position must never leak into a
thumbnail.
"""

from __future__ import annotations

import io
import logging
from dataclasses import replace
from typing import Any

from PIL import Image

from pipeline.config import Encoding
from pipeline.stages.colour import profile_fits
from pipeline.stages.metadata import NOTHING, Carried

logger = logging.getLogger(__name__)


def flatten(image: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    """Alpha composited onto ``background``: JPEG has no alpha, and dropping it would turn
    transparent pixels into whatever colour they happen to hold (often black)."""
    if image.mode == "LA":
        grey = round(sum(background) / 3)
        canvas = Image.new("L", image.size, grey)
        canvas.paste(image.getchannel("L"), mask=image.getchannel("A"))
        return canvas
    if image.mode == "RGBA":
        canvas = Image.new("RGB", image.size, background)
        canvas.paste(image, mask=image.getchannel("A"))
        return canvas
    return image


def _colour_modes(image: Image.Image) -> Image.Image:
    """WebP stores colour only, with or without alpha: grey images are widened to RGB."""
    if image.mode == "L":
        return image.convert("RGB")
    if image.mode == "LA":
        return image.convert("RGBA")
    return image


def _with_alpha_in_colour(image: Image.Image) -> Image.Image:
    """AVIF keeps plain grey as grey (a single 4:0:0 plane) but has no grey-with-alpha."""
    return image.convert("RGBA") if image.mode == "LA" else image


def _metadata_arguments(carried: Carried, mode: str) -> dict[str, Any]:
    """The encoder keywords for ``carried``. A grey profile cannot describe a grey image
    widened to RGB (WebP), so it is left out there and the pixels are taken as sRGB."""
    profile = carried.icc_profile
    return {
        "exif": carried.exif,
        "xmp": carried.xmp,
        "icc_profile": profile if profile and profile_fits(profile, mode) else None,
    }


# A JPEG marker segment holds at most 65,533 bytes; XMP shares its segment with a 29-byte
# namespace. (Pillow splits a long ICC profile over several segments, but not EXIF or XMP.)
JPEG_MAX_EXIF = 65_533
JPEG_MAX_XMP = 65_533 - 29


def _fitting_jpeg(carried: Carried) -> Carried:
    """``carried`` without the EXIF or XMP a JPEG cannot hold: a PNG or WebP source may carry
    a longer XMP (editing history) than one JPEG segment. The JPEG goes without it, the other
    formats keep it, and the image is not lost over its metadata."""
    exif = carried.exif if len(carried.exif) <= JPEG_MAX_EXIF else b""
    xmp = carried.xmp if len(carried.xmp) <= JPEG_MAX_XMP else b""
    if (exif, xmp) == (carried.exif, carried.xmp):
        return carried
    logger.info(
        "EXIF of %d bytes, XMP of %d: what is over 64 KB is left out of the JPEG",
        len(carried.exif),
        len(carried.xmp),
    )
    return replace(carried, exif=exif, xmp=xmp)


def encode(
    image: Image.Image,
    encoding: Encoding,
    background: tuple[int, int, int],
    carried: Carried = NOTHING,
) -> bytes:
    """``image`` (L, LA, RGB or RGBA) as a file in ``encoding``'s format, carrying ``carried``."""
    buffer = io.BytesIO()
    if encoding.format == "jpeg":
        output = flatten(image, background)
        output.save(
            buffer,
            "JPEG",
            quality=encoding.quality,
            optimize=encoding.jpeg_optimize,
            progressive=encoding.jpeg_progressive,
            comment=b"",  # the JPEG plugin would copy a source's comment from ``info``
            **_metadata_arguments(_fitting_jpeg(carried), output.mode),
        )
    elif encoding.format == "webp":
        output = _colour_modes(image)
        output.save(
            buffer,
            "WEBP",
            quality=encoding.quality,
            method=encoding.webp_method,
            **_metadata_arguments(carried, output.mode),
        )
    elif encoding.format == "avif":
        output = _with_alpha_in_colour(image)
        output.save(
            buffer,
            "AVIF",
            quality=encoding.quality,
            speed=encoding.avif_speed,
            max_threads=1,  # one worker process per core already uses every core
            **_metadata_arguments(carried, output.mode),
        )
    else:
        raise AssertionError(f"unknown format {encoding.format!r}")
    return buffer.getvalue()
