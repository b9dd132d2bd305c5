"""Bring any decoded mode to one of L, LA, RGB or RGBA in sRGB, the modes every later step
handles. Encoders then only need to decide about alpha."""

from __future__ import annotations

import io
import logging
from functools import lru_cache

from PIL import Image, ImageCms

logger = logging.getLogger(__name__)

WORKING_MODES = frozenset({"L", "LA", "RGB", "RGBA"})
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _has_transparency(image: Image.Image) -> bool:
    return "transparency" in image.info or image.mode in ("PA", "RGBa", "La")


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    """I;16 and I hold 0..65535: scale to 0..255 instead of letting convert('L') clip to white."""
    return image.convert("I").point(lambda value: value * (1 / 257)).convert("L")


@lru_cache(maxsize=32)
def _transform_to_srgb(profile_bytes: bytes, mode: str) -> ImageCms.ImageCmsTransform:
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile_bytes))
    out_mode = "RGBA" if mode == "RGBA" else "RGB"
    return ImageCms.buildTransform(
        source, _SRGB, mode, out_mode, renderingIntent=ImageCms.Intent.PERCEPTUAL
    )


def _convert_profile(image: Image.Image, profile: bytes) -> Image.Image | None:
    """The image in sRGB, or None when the profile cannot be used (then the pixels are taken
    as they are, which is what a browser does with a broken profile)."""
    try:
        return ImageCms.applyTransform(image, _transform_to_srgb(profile, image.mode))
    except (ImageCms.PyCMSError, OSError, ValueError) as error:
        logger.debug("ignoring unusable ICC profile: %s", error)
        return None


def normalise(image: Image.Image) -> Image.Image:
    """``image`` as L, LA, RGB or RGBA, converted from its embedded ICC profile to sRGB."""
    profile = image.info.get("icc_profile")
    mode = image.mode
    if mode in ("RGB", "RGBA", "CMYK") and profile:
        converted = _convert_profile(image, profile)
        if converted is not None:
            return converted
    if mode in WORKING_MODES:
        return image
    if mode in ("P", "PA"):
        return image.convert("RGBA" if _has_transparency(image) else "RGB")
    if mode == "1":
        return image.convert("L")
    if mode.startswith("I;16") or mode == "I":
        return _sixteen_bit_to_l(image)
    if mode in ("La", "RGBa"):
        return image.convert("LA" if mode == "La" else "RGBA")
    # CMYK without a profile, YCbCr, LAB, HSV, F: Pillow's own conversion is the best guess.
    return image.convert("RGB")
