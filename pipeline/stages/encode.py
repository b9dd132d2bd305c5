"""Encode one derivative. Nothing from the source's metadata is written: Pillow embeds EXIF,
XMP or ICC only when asked, and we never ask, so GPS positions do not leak into thumbnails."""

from __future__ import annotations

import io

from PIL import Image

from pipeline.config import Encoding


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
    """WebP and AVIF store colour, with or without alpha: grey images are widened to RGB."""
    if image.mode == "L":
        return image.convert("RGB")
    if image.mode == "LA":
        return image.convert("RGBA")
    return image


def encode(image: Image.Image, encoding: Encoding, background: tuple[int, int, int]) -> bytes:
    """``image`` (L, LA, RGB or RGBA) as a file in ``encoding``'s format."""
    buffer = io.BytesIO()
    if encoding.format == "jpeg":
        flatten(image, background).save(
            buffer,
            "JPEG",
            quality=encoding.quality,
            optimize=encoding.jpeg_optimize,
            progressive=encoding.jpeg_progressive,
        )
    elif encoding.format == "webp":
        _colour_modes(image).save(
            buffer, "WEBP", quality=encoding.quality, method=encoding.webp_method
        )
    elif encoding.format == "avif":
        _colour_modes(image).save(
            buffer,
            "AVIF",
            quality=encoding.quality,
            speed=encoding.avif_speed,
            icc_profile=None,  # the plugin would otherwise copy image.info's profile
            max_threads=1,  # one worker process per core already uses every core
        )
    else:
        raise AssertionError(f"unknown format {encoding.format!r}")
    return buffer.getvalue()
