"""Image files built byte by byte (headers that claim anything, damaged chunks) and pixel
comparisons, shared by the stage, hostile-input, fuzz and fidelity tests."""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Iterable

from PIL import Image, ImageChops, ImageStat

from pipeline.samples import photo_like


def png_chunk(kind: bytes, body: bytes, crc: int | None = None) -> bytes:
    """One PNG chunk; ``crc`` overrides the correct checksum (to damage it)."""
    checksum = zlib.crc32(kind + body) if crc is None else crc
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", checksum)


def png_bytes(
    width: int,
    height: int,
    pixels: bytes | None = None,
    *,
    extra_chunks: Iterable[bytes] = (),
    ihdr_crc: int | None = None,
    idat_crc: int | None = None,
) -> bytes:
    """An 8-bit greyscale PNG built by hand: the IHDR may claim any size, and ``pixels`` (raw
    scanlines, compressed here) may be left out so that nothing but the header exists."""
    header = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0), ihdr_crc)
    data = png_chunk(b"IDAT", zlib.compress(pixels, 9), idat_crc) if pixels is not None else b""
    return b"\x89PNG\r\n\x1a\n" + header + b"".join(extra_chunks) + data + png_chunk(b"IEND", b"")


def jpeg_header(width: int, height: int, *, progressive: bool = False) -> bytes:
    """The markers Pillow reads to open a JPEG (SOI, SOF, SOS) and no image data: any size can
    be claimed, and nothing can be decoded."""
    start_of_frame = b"\xff\xc2" if progressive else b"\xff\xc0"
    components = b"".join(bytes([i, 0x22 if i == 1 else 0x11, 0]) for i in (1, 2, 3))
    frame = struct.pack(">BHHB", 8, height, width, 3) + components
    scan = bytes([3]) + b"".join(bytes([i, 0]) for i in (1, 2, 3)) + bytes([0, 63, 0])
    return (
        b"\xff\xd8"
        + start_of_frame
        + struct.pack(">H", len(frame) + 2)
        + frame
        + b"\xff\xda"
        + struct.pack(">H", len(scan) + 2)
        + scan
    )


def encoded(image: Image.Image, format_name: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format_name, **options)
    return buffer.getvalue()


def small_photo(mode: str = "RGB") -> Image.Image:
    return photo_like(96, 64, seed=11, mode="RGBA" if mode in ("RGBA", "LA") else "RGB").convert(
        mode
    )


def pillow_images_allocated() -> int:
    """How many pixel buffers Pillow's core has created so far in this process."""
    return int(Image.core.get_stats()["new_count"])


def on_white(image: Image.Image) -> Image.Image:
    """RGB, with any alpha composited on white, so images of any mode can be compared."""
    if image.mode in ("LA", "RGBA", "PA", "P"):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio of two same-sized images in RGB, in dB (99 when identical)."""
    first, second = on_white(a), on_white(b)
    assert first.size == second.size, (first.size, second.size)
    histogram = ImageChops.difference(first, second).histogram()
    squared = sum(count * (index % 256) ** 2 for index, count in enumerate(histogram))
    mse = squared / (first.width * first.height * 3)
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def mean_abs_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel value (0..255) of two same-sized images."""
    return sum(ImageStat.Stat(ImageChops.difference(on_white(a), on_white(b))).mean) / 3


def channel_mean_shift(a: Image.Image, b: Image.Image) -> float:
    """The largest difference between the two images' per-channel means (a colour cast)."""
    means = zip(ImageStat.Stat(on_white(a)).mean, ImageStat.Stat(on_white(b)).mean, strict=True)
    return max(abs(x - y) for x, y in means)
