"""Colour in two steps around the resize.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

``resizable`` runs first, on the decoded image: it brings every mode Pillow can decode to one it
resizes correctly (L, LA, RGB, RGBA or CMYK). Palette and bilevel images would otherwise be
resized nearest-neighbour, and 16-bit grey clipped to white.

``to_srgb`` and ``kept_profile`` run after the resize, on at most the largest derivative's
pixels instead of the whole decoded image: they bring the result to L, LA, RGB or RGBA, either
converted from the embedded ICC profile to sRGB (what browsers assume for untagged images), or
left in the source's colour space with its profile kept for the encoder to embed.
"""

from __future__ import annotations

import io
import logging
from functools import lru_cache

from PIL import Image, ImageCms

logger = logging.getLogger(__name__)

RESIZABLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# An ICC profile names its colour space in bytes 16-19 of its header.
_PROFILE_SPACE = {"L": b"GRAY", "LA": b"GRAY", "RGB": b"RGB ", "RGBA": b"RGB ", "CMYK": b"CMYK"}


def _has_transparency(image: Image.Image) -> bool:
    return "transparency" in image.info or image.mode == "PA"


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """I;16 and I hold 0..65535: scale to 0..255 (rounded: the point table truncates) instead of
    letting convert('L') clip to white."""
    return image.convert("I").point(lambda value: value * (1 / 257) + 0.5).convert("L")


def resizable(image: Image.Image) -> Image.Image:
    """``image`` as L, LA, RGB, RGBA or CMYK (ValueError for a mode Pillow cannot convert)."""
    mode = image.mode
    if mode in RESIZABLE_MODES:
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if _has_transparency(image) else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16") or mode == "I":
        return _sixteen_bit_to_l(image)
    if mode in ("La", "RGBa"):
        return image.convert("LA" if mode == "La" else "RGBA")
    if mode == "F":
        return image.convert("L")
    if mode == "LAB":
        lab_to_srgb = ImageCms.buildTransform(ImageCms.createProfile("LAB"), _SRGB, "LAB", "RGB")
        return lab_to_srgb.apply(image)
    # RGBX, YCbCr, HSV: Pillow's own conversion.
    return image.convert("RGB")


def profile_fits(profile: bytes, mode: str) -> bool:
    """Whether an ICC profile describes images of ``mode`` (a grey profile on RGB is wrong)."""
    return len(profile) >= 20 and _PROFILE_SPACE.get(mode) == profile[16:20]


@lru_cache(maxsize=32)
def _transform_to_srgb(profile: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    out_mode = "RGBA" if mode == "RGBA" else "RGB"
    return ImageCms.buildTransform(
        source, _SRGB, mode, out_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL
    )


def _convert_profile(image: Image.Image, profile: bytes) -> Image.Image | None:
    """``image`` (L, RGB, RGBA or CMYK) in sRGB, or None when the profile cannot be used (then
    the pixels are taken as they are, which is what a browser does with a broken profile)."""
    if not profile_fits(profile, image.mode):
        return None
    try:
        converted = _transform_to_srgb(profile, image.mode).apply(image)
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        logger.debug("ignoring unusable ICC profile: %s", error)
        return None
    # lcms has no sRGB grey to convert into: grey goes through sRGB and comes back as L.
    return converted.convert("L") if image.mode == "L" else converted


def to_srgb(image: Image.Image, profile: bytes | None) -> Image.Image:
    """``image`` (L, LA, RGB, RGBA or CMYK) as L, LA, RGB or RGBA in sRGB."""
    if image.mode == "LA":
        grey = to_srgb(image.getchannel("L"), profile)
        return Image.merge("LA", (grey, image.getchannel("A")))
    if profile:
        converted = _convert_profile(image, profile)
        if converted is not None:
            return converted
    # CMYK without a usable profile: Pillow's naive formula is the best guess without one.
    return image.convert("RGB") if image.mode == "CMYK" else image


def kept_profile(mode: str, profile: bytes | None) -> bytes | None:
    """The source's profile, to embed unchanged, if pixels of ``mode`` can keep it: it must
    parse and describe their colour space. CMYK never can (no output format here stores CMYK)."""
    if not profile or mode == "CMYK" or not profile_fits(profile, mode):
        return None
    try:
        ImageCms.ImageCmsProfile(io.BytesIO(profile))
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None
    return profile
