"""Opening and decoding an image under thumbflow's rules rather than Pillow's process-wide ones.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

- Only an allow-list of formats may identify the file, so a hostile file cannot reach the parser
  of some rarely used format.
- Our own limits (``stages.limits``) decide what is too big. Pillow's global decompression-bomb
  check would refuse anything over ~179 MP first, with its own message, even when the user
  allowed more (a 200 MP phone JPEG decodes at 1/8 scale in bounded memory).
- Whether a file that ends early may still give derivatives is the batch's choice
  (``accept_truncated``), not ``ImageFile.LOAD_TRUNCATED_IMAGES``, which is one global for every
  thread of the worker.
- Damaged-file exceptions, which Pillow raises in many types, are sorted into two stable codes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO

from PIL import Image, ImageFile

# A JPEG with extra frames (stereo pairs, depth maps) is identified by the JPEG plugin and
# reported as "MPO"; its first frame is the photo. AVIF when this Pillow was built with libavif,
# HEIF when a plugin such as pillow-heif has registered an opener in this process.
_WANTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "HEIF")


def accepted_formats() -> tuple[str, ...]:
    """The allow-list, as far as this process's Pillow can read it. Asked at every open, so a
    plugin registered after thumbflow was imported still counts."""
    Image.init()  # a no-op after the first call
    return tuple(name for name in _WANTED_FORMATS if name in Image.OPEN)


class _TruncationPerThread:
    """Stands in for ``ImageFile.LOAD_TRUNCATED_IMAGES``, which Pillow only ever tests for truth,
    while thumbflow decodes: true in a thread decoding for a batch that accepts truncated files,
    and in every other thread whatever the process had set before."""

    def __init__(self, elsewhere: bool) -> None:
        self.elsewhere = elsewhere

    def __bool__(self) -> bool:
        accepted = getattr(_this_thread, "accept_truncated", None)
        return self.elsewhere if accepted is None else bool(accepted)


_this_thread = threading.local()
_users = 0
_users_lock = threading.Lock()
_saved_bomb_limit: int | None = None
_saved_truncation: bool = False


@contextmanager
def _pillow_settings_replaced() -> Iterator[None]:
    """Pillow's two globals are shared by every thread of a worker: the first thread to enter
    replaces them and the last to leave restores them, so concurrent decodes never undo each
    other's settings."""
    global _users, _saved_bomb_limit, _saved_truncation
    with _users_lock:
        if _users == 0:
            _saved_bomb_limit = Image.MAX_IMAGE_PIXELS
            _saved_truncation = ImageFile.LOAD_TRUNCATED_IMAGES
            Image.MAX_IMAGE_PIXELS = None
            ImageFile.LOAD_TRUNCATED_IMAGES = _TruncationPerThread(bool(_saved_truncation))  # type: ignore[assignment]
        _users += 1
    try:
        yield
    finally:
        with _users_lock:
            _users -= 1
            if _users == 0:
                Image.MAX_IMAGE_PIXELS = _saved_bomb_limit
                ImageFile.LOAD_TRUNCATED_IMAGES = _saved_truncation


@contextmanager
def _thumbflow_rules(*, accept_truncated: bool) -> Iterator[None]:
    outer = getattr(_this_thread, "accept_truncated", None)
    _this_thread.accept_truncated = accept_truncated
    try:
        with _pillow_settings_replaced():
            yield
    finally:
        _this_thread.accept_truncated = outer


def open_image(stream: BinaryIO) -> ImageFile.ImageFile:
    """Identify and parse the header only; the caller checks the limits before any ``load()``.
    A header that ends early is always refused: there is nothing to make derivatives from."""
    with _thumbflow_rules(accept_truncated=False):
        return Image.open(stream, formats=accepted_formats())


@contextmanager
def decoding(*, accept_truncated: bool) -> Iterator[None]:
    """Wrap ``draft()`` and ``load()``: some plugins run the bomb check again while decoding,
    and every plugin decides there whether data that ends early is an error."""
    with _thumbflow_rules(accept_truncated=accept_truncated):
        yield


def is_truncation(error: BaseException) -> bool:
    """Pillow says "the data ended early" as EOFError, "image file is truncated", "Truncated
    File Read" or "buffer is not large enough", depending on the plugin."""
    text = str(error).lower()
    return isinstance(error, EOFError) or "truncated" in text or "not large enough" in text
