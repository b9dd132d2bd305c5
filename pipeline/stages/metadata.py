"""What the derivatives carry from the source besides pixels.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

By default nothing: no EXIF (camera serial numbers, GPS positions), no XMP, no comments, no ICC
profile (the pixels are converted to sRGB). With ``keep_metadata`` the source's EXIF and XMP
travel, rewritten to say the pixels are upright, since every derivative is already turned: a
viewer that applied the source's orientation again would show it sideways. With
``colour="keep"`` the source's ICC profile travels instead of being converted (``colour.py``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from PIL import Image

from pipeline.stages.orientation import ORIENTATION_TAG

logger = logging.getLogger(__name__)

EXIF_IFD = 0x8769
MAKER_NOTE = 0x927C
# tiff:Orientation="6" or <tiff:Orientation>6</tiff:Orientation>, as Pillow reads it.
_XMP_ORIENTATION = re.compile(rb"(tiff:Orientation(?:=\"|>))[0-9]")


@dataclass(frozen=True)
class Carried:
    """What every derivative of one image carries besides pixels; the encoders write exactly
    this (the field names are their keywords), so an empty one strips everything."""

    exif: bytes = b""
    xmp: bytes = b""
    icc_profile: bytes | None = None


NOTHING = Carried()


def carried_metadata(image: Image.Image) -> Carried:
    """The EXIF and XMP of a loaded source, ready to embed in its derivatives."""
    return Carried(exif=_upright_exif(image) or b"", xmp=_upright_xmp(image) or b"")


def _upright_exif(image: Image.Image) -> bytes | None:
    # Only an EXIF block travels: a TIFF's getexif() is the file's own tag directory (strip
    # offsets, bit depths) and would describe the wrong file.
    if "exif" not in image.info and "Raw profile type exif" not in image.info:
        return None
    try:
        exif = image.getexif()
        exif[ORIENTATION_TAG] = 1
        # A maker note is a vendor blob full of offsets from where it used to be: moved into a
        # new file it is garbage, and it is most of the bytes (a Nikon D3100's: 36 of 37 KB).
        exif.get_ifd(EXIF_IFD).pop(MAKER_NOTE, None)
        return exif.tobytes()
    except Exception as error:  # a corrupt EXIF block is dropped, never the image
        logger.debug("dropping unreadable EXIF: %s", error)
        return None


def _upright_xmp(image: Image.Image) -> bytes | None:
    # JPEG, WebP, AVIF and TIFF keep XMP as "xmp" (bytes); PNG as an iTXt text (str).
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if not xmp:
        return None
    data = xmp.encode() if isinstance(xmp, str) else bytes(xmp)
    return _XMP_ORIENTATION.sub(rb"\g<1>1", data)
