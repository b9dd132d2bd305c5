"""Is this an image we accept, and is it small enough to decode? Decided from the header alone.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

The format comes from the content (Pillow's magic-byte identification restricted to an allow-list),
never from the file name. Size, pixel and frame limits come from the file's size and header, so a
decompression bomb is refused before a single pixel is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, replace
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from pipeline.config import PipelineConfig
from pipeline.errors import Failure, FailureCode, ImageError
from pipeline.stages import limits
from pipeline.stages.geometry import draft_request, plan_for
from pipeline.stages.opening import accepted_formats, is_truncation, open_image
from pipeline.stages.orientation import is_transposed, orientation_of
from pipeline.stages.sources import open_binary

# Signatures of files people feed us, so a refusal can say what the file *is*, with the Pillow
# format that would read it (None: not an image at all). Failing to open a format we accept means
# the file is damaged; any other image format is one we do not read.
_KNOWN_SIGNATURES: tuple[tuple[bytes, str, str | None], ...] = (
    (b"%PDF", "a PDF document", None),
    (b"PK\x03\x04", "a ZIP archive", None),
    (b"\x1f\x8b", "a gzip archive", None),
    (b"8BPS", "a Photoshop PSD image", "PSD"),
    (b"\x00\x00\x01\x00", "an ICO icon", "ICO"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream", "JPEG2000"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image", "JPEG2000"),
    (b"II*\x00", "a TIFF image", "TIFF"),
    (b"MM\x00*", "a TIFF image", "TIFF"),
    (b"\x89PNG", "a PNG image", "PNG"),
    (b"\xff\xd8\xff", "a JPEG image", "JPEG"),
    (b"GIF8", "a GIF image", "GIF"),
    (b"RIFF", "a RIFF file (WebP?)", "WEBP"),
    (b"BM", "a BMP image", "BMP"),
)
# ISO base media files name their brand in bytes 4-12, after the first box's size.
_FTYP_BRANDS: tuple[tuple[tuple[bytes, ...], str, str], ...] = (
    ((b"ftypavif", b"ftypavis"), "an AVIF image", "AVIF"),
    ((b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1"), "a HEIF image", "HEIF"),
)


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


def _identify(head: bytes) -> tuple[str, str | None] | None:
    """(description, Pillow format or None) for a known signature."""
    for prefix, description, pillow_format in _KNOWN_SIGNATURES:
        if head.startswith(prefix):
            return description, pillow_format
    for brands, description, pillow_format in _FTYP_BRANDS:
        if head[4:12] in brands:
            return description, pillow_format
    return None


def describe_start(head: bytes) -> str:
    """A person-readable guess at what a non-image file is, from its first bytes. It names the
    kind of content, never the bytes: an input may be a link to a private file, and this text
    ends up in the manifest."""
    if not head:
        return "an empty file"
    known = _identify(head)
    if known is not None:
        return known[0]
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


def _unidentified(source: str, head: bytes) -> Failure:
    description = describe_start(head)
    known = _identify(head)
    if known is None or known[1] is None:
        return Failure("validate", "not_an_image", f"{source}: not an image ({description})")
    accepted = accepted_formats()
    if known[1] in accepted:
        return Failure("validate", "decode_error", f"{source}: {description} with a damaged header")
    return Failure(
        "validate",
        "unsupported_format",
        f"{source}: {description}, which thumbflow does not read (accepted: {', '.join(accepted)})",
    )


def _declared_length(head: bytes) -> int | None:
    """A RIFF file (WebP) states its length up front, so a partial download can be told apart
    from damage although libwebp only says it "could not create decoder object"."""
    if head.startswith(b"RIFF") and len(head) >= 8:
        return int.from_bytes(head[4:8], "little") + 8
    return None


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


def read_header(source: str, size_bytes: int, config: PipelineConfig) -> ImageHeader:
    """The image's header facts, or ``ImageError`` saying why it is refused."""
    limits.check_file_size(source, size_bytes, config)
    with open_binary(source) as stream:
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
        image = open_image(stream)
    except Exception as error:
        raise ImageError(_refusal(source, head, size_bytes, error)) from None
    with image:
        try:
            return _checked_header(source, image, config)
        except ImageError:
            raise
        except Exception as error:  # damage found while reading past the first header
            message = f"{source}: {describe_start(head)} whose header is damaged ({error})"
            raise ImageError(Failure("validate", "decode_error", message)) from None


def _refusal(source: str, head: bytes, size_bytes: int, error: Exception) -> Failure:
    """Why Pillow could not open the file, as a failure a person can act on."""
    declared = _declared_length(head)
    if declared is not None and declared > size_bytes:
        message = (
            f"{source}: {describe_start(head)} that ends early (its header declares "
            f"{declared:,} bytes, the file has {size_bytes:,})"
        )
        return Failure("validate", "truncated", message)
    if isinstance(error, UnidentifiedImageError):
        return _unidentified(source, head)
    # Pillow knew the magic bytes but the header is damaged.
    code: FailureCode = "truncated" if is_truncation(error) else "decode_error"
    message = f"{source}: {describe_start(head)} whose header is damaged ({error})"
    return Failure("validate", code, message)
