"""Is this an image we accept, and is it small enough to decode? Decided from the header alone.

The format comes from the content (Pillow's magic-byte identification restricted to an allow-list),
never from the file name. Dimensions come from the header, so a decompression bomb is refused
before a single pixel is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from PIL import Image, UnidentifiedImageError

from pipeline.config import PipelineConfig
from pipeline.errors import Failure, FailureCode, ImageError
from pipeline.stages.opening import ACCEPTED_FORMATS, is_truncation, open_image
from pipeline.stages.sources import open_binary

EXIF_ORIENTATION_TAG = 0x0112

# Signatures of files people feed us, so a refusal can say what the file *is*. The kind says
# what a failure to open one means: "accepted" (a format we read, so the file is damaged),
# "image" (a format we do not read) or "other" (not an image at all).
_KNOWN_SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"%PDF", "a PDF document", "other"),
    (b"PK\x03\x04", "a ZIP archive", "other"),
    (b"\x1f\x8b", "a gzip archive", "other"),
    (b"8BPS", "a Photoshop PSD image", "image"),
    (b"\x00\x00\x01\x00", "an ICO icon", "image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream", "image"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image", "image"),
    (b"II*\x00", "a TIFF image", "accepted"),
    (b"MM\x00*", "a TIFF image", "accepted"),
    (b"\x89PNG", "a PNG image", "accepted"),
    (b"\xff\xd8\xff", "a JPEG image", "accepted"),
    (b"GIF8", "a GIF image", "accepted"),
    (b"RIFF", "a RIFF file (WebP?)", "accepted"),
    (b"BM", "a BMP image", "accepted"),
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
        return self.orientation in (5, 6, 7, 8)


def describe_start(head: bytes) -> str:
    """A person-readable guess at what a non-image file is, from its first bytes."""
    for prefix, description, _ in _KNOWN_SIGNATURES:
        if head.startswith(prefix):
            return description
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1"):
        return "a HEIF image"
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        return "an HTML page"
    if text.startswith(b"<?xml") or text.startswith(b"<svg"):
        return "an XML/SVG document"
    if text.startswith(b"#!"):
        return "a script"
    if head and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return f"a text file (starts with {head[:12].decode()!r})"
    shown = head[:8].decode("latin-1")
    printable = "".join(ch if ch.isprintable() else "." for ch in shown)
    return f"unknown content (starts with {printable!r})"


def _signature_kind(head: bytes) -> str:
    for prefix, _, kind in _KNOWN_SIGNATURES:
        if head.startswith(prefix):
            return kind
    return "image" if describe_start(head) == "a HEIF image" else "other"


def _unidentified(source: str, head: bytes) -> Failure:
    description = describe_start(head)
    kind = _signature_kind(head)
    if kind == "accepted":
        return Failure("validate", "decode_error", f"{source}: {description} with a damaged header")
    if kind == "image":
        return Failure(
            "validate",
            "unsupported_format",
            f"{source}: {description}, which thumbflow does not read "
            f"(accepted: {', '.join(ACCEPTED_FORMATS)})",
        )
    return Failure("validate", "not_an_image", f"{source}: not an image ({description})")


# Pillow turns these upright itself while loading (and reports the upright size already).
_ORIENTED_BY_PILLOW = frozenset({"TIFF"})


def orientation_of(image: Image.Image, *, loaded: bool = False) -> int:
    """EXIF orientation 1-8 still to be applied; a missing, zero or invalid tag means upright.

    Never decodes: for a PNG whose EXIF chunk comes after the pixel data, Pillow's getexif()
    would load the whole image (a bomb, before our size check), so that tag is read after
    decoding instead (see ``resize.decode``).
    """
    if image.format in _ORIENTED_BY_PILLOW:
        return 1
    if image.format == "PNG" and "exif" not in image.info and not loaded:
        return 1
    try:
        value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a corrupt EXIF block must not cost the image: treat it as upright
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def read_header(source: str, size_bytes: int, config: PipelineConfig) -> ImageHeader:
    """The image's header facts, or ``ImageError`` saying why it is refused."""
    if size_bytes == 0:
        raise ImageError(Failure("validate", "empty_file", f"{source}: the file is empty"))
    if size_bytes > config.max_file_bytes:
        raise ImageError(
            Failure(
                "validate",
                "file_too_large",
                f"{source}: {size_bytes:,} bytes is over the max_file_bytes limit "
                f"of {config.max_file_bytes:,}",
            )
        )
    with open_binary(source) as stream:
        head = stream.read(32)
        stream.seek(0)
        try:
            image = open_image(stream)
        except UnidentifiedImageError:
            raise ImageError(_unidentified(source, head)) from None
        except Exception as error:  # Pillow knew the magic bytes but the header is damaged
            code: FailureCode = "truncated" if is_truncation(error) else "decode_error"
            message = f"{source}: {describe_start(head)} whose header is damaged ({error})"
            raise ImageError(Failure("validate", code, message)) from None
        with image:
            width, height = image.size
            pixels = width * height
            if pixels > config.max_pixels:
                raise ImageError(
                    Failure(
                        "validate",
                        "too_many_pixels",
                        f"{source}: {width}x{height} is {pixels / 1e6:.0f} MP, over the "
                        f"max_pixels limit of {config.max_pixels / 1e6:.0f} MP",
                    )
                )
            if width < 1 or height < 1:
                message = f"{source}: the header claims a {width}x{height} image"
                raise ImageError(Failure("validate", "decode_error", message))
            # Only now, with the size known to be acceptable: reading EXIF may parse more.
            orientation = orientation_of(image)
            header = ImageHeader(image.format or "unknown", image.mode, width, height, orientation)
    if header.transposed:
        return replace(header, width=height, height=width)
    return header
