"""EXIF orientation: how a camera stored the picture, and turning it upright.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

Phones store the sensor's rows as they came and record how to show them: EXIF tag 0x0112, or
XMP's ``tiff:Orientation`` (Pillow's ``getexif()`` reads both, from JPEG, PNG, WebP and AVIF).
1 is upright; a missing, zero or out-of-range value means upright too, as in browsers.
"""

from __future__ import annotations

from PIL import Image

ORIENTATION_TAG = 0x0112

_T = Image.Transpose
# What a viewer does to show each orientation upright (EXIF 2.3, tag 0x0112).
_TO_UPRIGHT = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_270,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_90,
}

# Pillow turns these upright itself while loading (and reports the upright size already).
_ORIENTED_BY_PILLOW = frozenset({"TIFF"})


def is_transposed(orientation: int) -> bool:
    """Orientations 5-8 store the picture a quarter turn from how it is shown."""
    return orientation in (5, 6, 7, 8)


def orientation_of(image: Image.Image, *, loaded: bool = False) -> int:
    """EXIF orientation 1-8 still to be applied to ``image``'s pixels.

    Never decodes: on a PNG without an EXIF chunk before its pixel data, Pillow's getexif()
    loads the whole image to look after it (a bomb, before the limits are checked), so such a
    PNG's orientation (trailing EXIF, or XMP) is read only once it is loaded (``loaded=True``).
    """
    if image.format in _ORIENTED_BY_PILLOW:
        return 1
    if image.format == "PNG" and "exif" not in image.info and not loaded:
        return 1
    try:
        value = image.getexif().get(ORIENTATION_TAG, 1)
    except Exception:  # a corrupt EXIF block must not cost the image: treat it as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` as it is meant to be shown under ``orientation``."""
    method = _TO_UPRIGHT.get(orientation)
    return image if method is None else image.transpose(method)
