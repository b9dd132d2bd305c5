"""Opening an image under thumbflow's rules rather than Pillow's defaults.

- Only an allow-list of formats may identify the file, so a hostile file cannot reach the parser
  of some rarely used format.
- Our own ``max_pixels`` limit decides what is too big. Pillow's global decompression-bomb check
  would refuse anything over ~179 MP first, with its own message, even when the user allowed
  more (a 200 MP phone JPEG decodes at ⅛ scale in bounded memory).
- Damaged-file exceptions, which Pillow raises in many types, are sorted into two stable codes.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from PIL import Image

# A JPEG with extra frames (stereo pairs, depth maps) is identified by the JPEG plugin and
# reported as "MPO"; its first frame is the photo. AVIF when this Pillow was built with libavif.
Image.init()
ACCEPTED_FORMATS = tuple(
    name for name in ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF") if name in Image.OPEN
)

_suspensions = 0
_suspensions_lock = threading.Lock()
_saved_limit: int | None = None


@contextmanager
def _pillow_bomb_check_suspended() -> Iterator[None]:
    """Pillow's limit is one module global; several threads of a worker may open images at once,
    so the first to enter lifts it and the last to leave restores it."""
    global _suspensions, _saved_limit
    with _suspensions_lock:
        if _suspensions == 0:
            _saved_limit = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
        _suspensions += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        with _suspensions_lock:
            _suspensions -= 1
            if _suspensions == 0:
                Image.MAX_IMAGE_PIXELS = _saved_limit


def open_image(stream: BinaryIO) -> Image.Image:
    """Identify and parse the header only; the caller checks the size before any ``load()``."""
    with _pillow_bomb_check_suspended():
        return Image.open(stream, formats=ACCEPTED_FORMATS)


@contextmanager
def decoding() -> Iterator[None]:
    """Wrap ``load()``: some plugins run the bomb check again while decoding."""
    with _pillow_bomb_check_suspended():
        yield


def is_truncation(error: BaseException) -> bool:
    """Pillow says "the data ended early" as EOFError, "image file is truncated", "Truncated
    File Read" or "buffer is not large enough", depending on the plugin."""
    text = str(error).lower()
    return isinstance(error, EOFError) or "truncated" in text or "not large enough" in text
