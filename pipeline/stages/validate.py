"""Is this an image we accept, and is it small enough to decode? Decided from the header alone.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

The format comes from the content (Pillow's magic-byte identification restricted to an allow-list
and the batch's ``allow_formats``), never from the file name; a refused file is named by what
Pillow takes it for. Size, pixel and frame limits come from the file's size and header, so a
decompression bomb is refused before a single pixel is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from pipeline.config import EXTRA_FORMATS, PipelineConfig
from pipeline.errors import Failure, FailureCode, ImageError
from pipeline.stages import limits
from pipeline.stages.boxes import claimed_size
from pipeline.stages.geometry import draft_request, plan_for
from pipeline.stages.opening import (
    Identified,
    accepted_formats,
    identify,
    is_truncation,
    magic_matches,
    open_image,
)
from pipeline.stages.orientation import is_transposed, orientation_of
from pipeline.stages.sources import open_binary

# A refusal says what the file *is*. Image formats are named by Pillow: the always-read ones by
# their magic bytes (a file that starts like a JPEG and does not open is a damaged JPEG), every
# other one by its opener parsing the header (``opening.identify``: magic bytes alone are too
# loose for many formats, "P6" starts a PPM and many a text). Pillow knows nothing of the
# containers below, so they are named here.
_NOT_IMAGES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
)
# A RIFF file names its form in bytes 8-12; only "WEBP" is an image.
_RIFF_FORMS = {b"WEBP": "a WebP image", b"WAVE": "a WAV audio file", b"AVI ": "an AVI video"}
# ISO base media files name their brand in bytes 4-12, after the first box's size; HEIF is
# named even when no plugin for it is installed (then Pillow knows nothing of it).
_FTYP_BRANDS: tuple[tuple[tuple[bytes, ...], str, str | None], ...] = (
    ((b"ftypavif", b"ftypavis"), "an AVIF image", "AVIF"),
    ((b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1"), "a HEIF image", "HEIF"),
    ((b"ftypisom", b"ftypmp41", b"ftypmp42", b"ftypM4V "), "an MP4 video", None),
    ((b"ftypqt  ",), "a QuickTime video", None),
)
_NAMES = {"WEBP": "WebP"}  # how an always-read format is named in a message, if not as Pillow does


@dataclass(frozen=True)
class ImageHeader:
    """What the header says; ``width``/``height`` are as displayed, after EXIF orientation."""

    format: str
    mode: str
    width: int
    height: int
    orientation: int

    @property
    def transposed(self) -> bool:
        """Orientations 5-8 store the image rotated a quarter turn from how it is shown."""
        return is_transposed(self.orientation)


def _container(head: bytes) -> tuple[str, str | None] | None:
    """(description, Pillow format or None) of an ISO base media or RIFF file."""
    for brands, description, pillow_format in _FTYP_BRANDS:
        if head[4:12] in brands:
            return description, pillow_format
    if head.startswith(b"RIFF"):
        form = head[8:12]
        return _RIFF_FORMS.get(form, "a RIFF file"), "WEBP" if form == b"WEBP" else None
    return None


def _default_format_by_magic(head: bytes) -> str | None:
    """The always-read format whose magic bytes (Pillow's own test) ``head`` starts with."""
    return next((name for name in accepted_formats() if magic_matches(name, head)), None)


def _format_of_start(head: bytes) -> tuple[str, str | None] | None:
    """(description, Pillow format or None) of content recognised from its first bytes."""
    known = _container(head)
    if known is not None:
        return known
    name = _default_format_by_magic(head)
    if name is not None:
        return f"a {_NAMES.get(name, name)} image", name
    return None


def describe_start(head: bytes) -> str:
    """A person-readable guess at what a file is, from its first bytes. It names the kind of
    content, never the bytes: an input may be a link to a private file, and this text ends up
    in the manifest."""
    if not head:
        return "an empty file"
    known = _format_of_start(head)
    if known is not None:
        return known[0]
    for prefix, description in _NOT_IMAGES:
        if head.startswith(prefix):
            return description
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if text.startswith(b"<?xml") or text.startswith(b"<svg"):
        return "an XML/SVG document"
    if text.startswith(b"#!"):
        return "a script"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "a text file"
    return "binary data"


def _not_read(source: str, found: Identified, accepted: tuple[str, ...]) -> Failure:
    """An image in a format Pillow knows and this batch does not read."""
    what = f"an image in {found.format} format ({found.description})"
    if found.ends_early:
        what += " that ends early"
    if found.format in EXTRA_FORMATS:
        reason = (
            f"which thumbflow reads only when allowed: --allow-format {found.format} "
            "(allow_formats in Python)"
        )
    else:
        reason = f"a format thumbflow does not read (it reads {', '.join(accepted)})"
    return Failure("validate", "unsupported_format", f"{source}: {what}, {reason}")


def _unidentified(source: str, head: bytes, stream: BinaryIO, config: PipelineConfig) -> Failure:
    """No format this batch reads opened the file: say what it is instead."""
    accepted = accepted_formats(config.allow_formats)
    known = _format_of_start(head)
    if known is not None and known[1] in accepted:
        return Failure("validate", "decode_error", f"{source}: {known[0]} with a damaged header")
    found = identify(stream, skip=accepted)
    if found is not None:
        return _not_read(source, found, accepted)
    if known is not None and known[1] is not None:  # HEIF without its plugin, for one
        message = (
            f"{source}: {known[0]}, which this installation does not read "
            f"(it reads {', '.join(accepted)})"
        )
        return Failure("validate", "unsupported_format", message)
    return Failure("validate", "not_an_image", f"{source}: not an image ({describe_start(head)})")


def _declared_length(head: bytes) -> int | None:
    """A WebP file states its length up front, so a partial download can be told apart from
    damage although libwebp only says it "could not create decoder object". Only a RIFF file of
    form WEBP: a WAV or an AVI is RIFF too, and no image however long it is."""
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return int.from_bytes(head[4:8], "little") + 8
    return None


def _check_avif_size(source: str, head: bytes, stream: BinaryIO, config: PipelineConfig) -> None:
    """libavif refuses a header over its own size limit in the words it uses for damage; the
    size the file's boxes claim says which it was, and a limit is refused as a limit."""
    known = _container(head)
    if known is None or known[1] != "AVIF" or "AVIF" not in accepted_formats():
        return
    claimed = claimed_size(stream)
    if claimed is not None:
        limits.check_avif_claim(source, *claimed, config)


def _checked_header(source: str, image: Image.Image, config: PipelineConfig) -> ImageHeader:
    """The header facts of an opened image, once every limit has passed."""
    width, height = image.size
    limits.check_header_pixels(source, width, height, config)
    # Only now, with the size known to be acceptable: reading EXIF may parse more.
    orientation = orientation_of(image)
    header = ImageHeader(image.format or "unknown", image.mode, width, height, orientation)
    if header.transposed:
        header = replace(header, width=height, height=width)
    plans = [plan_for(header.width, header.height, size) for size in config.sizes]
    limits.check_decoded_pixels(source, image, draft_request(plans, header.transposed), config)
    limits.check_frames(source, image, config)
    return header


def read_header(
    source: str, size_bytes: int, config: PipelineConfig, *, stored_at: str | None = None
) -> ImageHeader:
    """The image's header facts, or ``ImageError`` saying why it is refused. ``stored_at``:
    where to read the bytes when not from ``source`` (a URL's fetched copy); refusals name
    ``source``."""
    limits.check_file_size(source, size_bytes, config)
    with open_binary(stored_at or source) as stream:
        return _header_from(source, stream, size_bytes, config)


def header_of_bytes(source: str, data: bytes, config: PipelineConfig) -> ImageHeader:
    """``read_header`` of a file's bytes already in memory (``source`` names it in refusals):
    the limits then hold for the very bytes about to be decoded, whatever the path held when it
    was validated. Costs a header parse, no decoding."""
    limits.check_file_size(source, len(data), config)
    return _header_from(source, io.BytesIO(data), len(data), config)


def _header_from(
    source: str, stream: BinaryIO, size_bytes: int, config: PipelineConfig
) -> ImageHeader:
    head = stream.read(32)
    stream.seek(0)
    try:
        image = open_image(stream, config.allow_formats)
    except Exception as error:
        raise ImageError(_refusal(source, head, stream, size_bytes, error, config)) from None
    with image:
        try:
            return _checked_header(source, image, config)
        except ImageError:
            raise
        except Exception as error:  # damage found while reading past the first header
            message = f"{source}: {describe_start(head)} whose header is damaged ({error})"
            raise ImageError(Failure("validate", "decode_error", message)) from None


def _refusal(
    source: str,
    head: bytes,
    stream: BinaryIO,
    size_bytes: int,
    error: Exception,
    config: PipelineConfig,
) -> Failure:
    """Why Pillow could not open the file, as a failure a person can act on."""
    declared = _declared_length(head)
    if declared is not None and declared > size_bytes:
        message = (
            f"{source}: {describe_start(head)} that ends early (its header declares "
            f"{declared:,} bytes, the file has {size_bytes:,})"
        )
        return Failure("validate", "truncated", message)
    if isinstance(error, UnidentifiedImageError):
        try:
            _check_avif_size(source, head, stream, config)
        except ImageError as refused:
            return refused.failure
        return _unidentified(source, head, stream, config)
    # Pillow knew the magic bytes but the header is damaged.
    code: FailureCode = "truncated" if is_truncation(error) else "decode_error"
    message = f"{source}: {describe_start(head)} whose header is damaged ({error})"
    return Failure("validate", code, message)
