"""Opening and decoding an image under thumbflow's rules rather than Pillow's process-wide ones.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

- Only an allow-list of formats may identify the file, so a hostile file cannot reach the parser
  of some rarely used format; a batch may add formats Pillow decodes itself (``allow_formats``).
  A file none of them opens is then identified among every format Pillow knows, header only, so
  a refusal can name the format (``identify``).
- Our own limits (``stages.limits``) decide what is too big. Pillow's global decompression-bomb
  check would refuse anything over ~179 MP first, with its own message, even when the user
  allowed more (a 200 MP phone JPEG decodes at 1/8 scale in bounded memory).
- Whether a file that ends early may still give derivatives is the batch's choice
  (``accept_truncated``), not ``ImageFile.LOAD_TRUNCATED_IMAGES``, which is one global for every
  thread of the worker.
- Damaged-file exceptions, which Pillow raises in many types, are sorted into two stable codes.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageFile

# A JPEG with extra frames (stereo pairs, depth maps) is identified by the JPEG plugin and
# reported as "MPO"; its first frame is the photo. AVIF when this Pillow was built with libavif,
# HEIF when a plugin such as pillow-heif has registered an opener in this process.
_WANTED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "HEIF")


def accepted_formats(extra: Collection[str] = ()) -> tuple[str, ...]:
    """The allow-list, as far as this process's Pillow can read it, then the batch's ``extra``
    formats. Asked at every open, so a plugin registered after thumbflow was imported still
    counts. The order is the order Pillow tries them in: the default formats first, so allowing
    more never changes how a file that one of them reads is read."""
    Image.init()  # a no-op after the first call
    wanted = (*_WANTED_FORMATS, *(name for name in extra if name not in _WANTED_FORMATS))
    return tuple(name for name in wanted if name in Image.OPEN)


@dataclass(frozen=True)
class Identified:
    """A format Pillow takes a file for; ``format`` is Pillow's name for it (what
    ``allow_formats`` takes), ``description`` Pillow's words for it ("Targa")."""

    format: str
    description: str
    ends_early: bool  # the header starts as this format's does, but the file ends inside it


# What a plugin raises when the file is not its format: Pillow's own ``Image.open`` moves on to
# the next plugin after these. ValueError too: a text file that starts "P6 is…" reaches the PPM
# parser, which fails to read "is" as a number.
_NOT_THIS_FORMAT = (SyntaxError, IndexError, TypeError, struct.error, ValueError)
_IDENTIFY_BYTES = 256 * 1024


def _accepts(accept: Callable[[bytes], bool | str], prefix: bytes) -> bool:
    """Pillow's magic-byte test; a str answer means "this format, but no codec for it here"."""
    verdict = accept(prefix)
    return bool(verdict) and not isinstance(verdict, str)


def magic_matches(name: str, prefix: bytes) -> bool:
    """Whether ``prefix`` starts as Pillow expects format ``name`` to (False for a format it
    has no opener or no magic-byte test for)."""
    Image.init()
    accept = Image.OPEN[name][1] if name in Image.OPEN else None
    try:
        return accept is not None and _accepts(accept, prefix)
    except _NOT_THIS_FORMAT:
        return False


def identify(stream: BinaryIO, skip: Collection[str] = ()) -> Identified | None:
    """The first format, among every one this Pillow has an opener for except ``skip``, whose
    opener parses the file's header; None if none does. Nothing is decoded: openers read the
    header only (a decoder runs at ``load()``), and a file that reaches none of them costs the
    magic-byte checks. Used only to word a refusal, never to decode what it finds."""
    Image.init()
    stream.seek(0)
    # A format with no magic bytes (TGA, IM, IMT...) is tried on every file that reaches here,
    # so its opener sees the first 256 KiB only: IMT walks a text file line by line to its end
    # (12 s for a 64 MB log). One whose magic bytes matched reads the file itself: a PSD's
    # header alone may hold megabytes of resources.
    head = stream.read(_IDENTIFY_BYTES + 1)
    window = io.BytesIO(head[:_IDENTIFY_BYTES])
    prefix = head[:16]
    for name in Image.ID:
        if name in skip:
            continue
        factory, accept = Image.OPEN[name]
        source = stream if accept is not None else window
        try:
            if accept is not None and not _accepts(accept, prefix):
                continue
            source.seek(0)
            with _thumbflow_rules(accept_truncated=False):
                image = factory(source, "")
        except _NOT_THIS_FORMAT:  # from the magic-byte test too: some unpack a too short file
            continue
        except Exception as error:
            if is_truncation(error):  # its header, cut short: still what the file is
                described = getattr(factory, "format_description", None) or name
                ends_early = source is stream or len(head) <= _IDENTIFY_BYTES
                return Identified(name, described, ends_early=ends_early)
            continue
        description = image.format_description or name
        image.close()
        return Identified(name, description, ends_early=False)
    return None


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


def open_image(stream: BinaryIO, extra: Collection[str] = ()) -> ImageFile.ImageFile:
    """Identify (among the allow-list and the batch's ``extra`` formats) and parse the header
    only; the caller checks the limits before any ``load()``. A header that ends early is
    always refused: there is nothing to make derivatives from."""
    with _thumbflow_rules(accept_truncated=False):
        return Image.open(stream, formats=accepted_formats(extra))


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
