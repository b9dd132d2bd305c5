"""What thumbflow refuses before decoding, each refusal naming the limit that made it.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

Every check reads the file's size or its header only: a decompression bomb, a header claiming
ten gigapixels or a GIF of a million frames is refused in microseconds, and its pixels are never
allocated. The defaults and the reasons for them are in ``PipelineConfig``.
"""

from __future__ import annotations

from PIL import GifImagePlugin, Image, TiffImagePlugin

from pipeline.config import PipelineConfig
from pipeline.errors import Failure, FailureCode, ImageError


def _refuse(code: FailureCode, message: str) -> ImageError:
    return ImageError(Failure("validate", code, message))


def check_file_size(source: str, size_bytes: int, config: PipelineConfig) -> None:
    if size_bytes == 0:
        raise _refuse("empty_file", f"{source}: the file is empty")
    if size_bytes > config.max_file_bytes:
        raise _refuse(
            "file_too_large",
            f"{source}: {size_bytes:,} bytes is over the max_file_bytes limit "
            f"of {config.max_file_bytes:,}",
        )


def check_header_pixels(source: str, width: int, height: int, config: PipelineConfig) -> None:
    pixels = width * height
    if pixels > config.max_pixels:
        raise _refuse(
            "too_many_pixels",
            f"{source}: {width}x{height} ({pixels:,} pixels) is over the max_pixels limit "
            f"of {config.max_pixels:,}",
        )
    if width < 1 or height < 1:
        raise _refuse("decode_error", f"{source}: the header claims a {width}x{height} image")


def decoded_size(image: Image.Image, request: tuple[int, int]) -> tuple[int, int]:
    """The size ``load()`` will allocate once ``draft(None, request)`` has chosen JPEG's reduced
    scale (other formats always decode at full size). Leaves ``image`` drafted.

    A progressive JPEG is counted at full size whatever the scale: libjpeg keeps all of its
    coefficients in memory (measured: 100 MP needs ~295 MB more, a baseline one ~20 MB).
    """
    if image.info.get("progressive"):
        return image.size
    image.draft(None, request)
    return image.size


def _check_decoded(
    source: str, size: tuple[int, int], pixels: int, kind: str, config: PipelineConfig
) -> None:
    if pixels > config.max_decoded_pixels:
        raise _refuse(
            "too_many_pixels",
            f"{source}: this {size[0]}x{size[1]} {kind} decodes to {pixels:,} pixels in memory, "
            f"over the max_decoded_pixels limit of {config.max_decoded_pixels:,}",
        )


def check_decoded_pixels(
    source: str, image: Image.Image, request: tuple[int, int], config: PipelineConfig
) -> None:
    size = image.size
    decoded = decoded_size(image, request)
    kind = "progressive JPEG" if image.info.get("progressive") else f"{image.format} image"
    _check_decoded(source, size, decoded[0] * decoded[1], kind, config)


# libavif refuses larger images itself, whatever thumbflow's limits allow (its default image
# size and dimension limits, which Pillow keeps): measured with Pillow 13 / libavif 1.4, a
# 16384x16384 header opens, 16385x16384 and 300000x10 do not.
AVIF_MAX_PIXELS = 16384 * 16384
AVIF_MAX_SIDE = 32768


def check_avif_claim(source: str, width: int, height: int, config: PipelineConfig) -> None:
    """The limits for an AVIF whose header libavif would not open, from the size its boxes
    claim: thumbflow's own limits first (an AVIF always decodes at full size), then libavif's."""
    check_header_pixels(source, width, height, config)
    pixels = width * height
    _check_decoded(source, (width, height), pixels, "AVIF image", config)
    if pixels > AVIF_MAX_PIXELS or max(width, height) > AVIF_MAX_SIDE:
        raise _refuse(
            "too_many_pixels",
            f"{source}: this {width}x{height} AVIF image ({pixels:,} pixels) is over libavif's "
            f"own limit of {AVIF_MAX_PIXELS:,} pixels and {AVIF_MAX_SIDE:,} a side, which "
            "thumbflow cannot raise",
        )


def has_more_frames_than(image: Image.Image, limit: int) -> bool:
    """Counts no further than ``limit + 1`` frames. ``n_frames`` comes from the header for WebP,
    APNG, MPO and AVIF, but GIF and TIFF find it by walking every frame of the file: ~3 µs per
    GIF frame (a 256 MB GIF of 15-byte frames: a minute), and TIFF's walk grows faster than
    linearly. Leaves ``image`` at some frame: call it last, before closing."""
    try:
        if isinstance(image, GifImagePlugin.GifImageFile):
            # seek() would decode every frame on the way; this private step reads block
            # headers only (it is what GIF's own n_frames uses).
            for frame in range(1, limit + 1):
                image._seek(frame, update_image=False)
            return True
        if isinstance(image, TiffImagePlugin.TiffImageFile):
            image.seek(limit)  # reads directory entries only, no pixels
            return True
    except EOFError:
        return False
    except Exception:  # a damaged frame past the first: unreachable for anyone, not counted
        return False
    return bool(getattr(image, "n_frames", 1) > limit)


def check_frames(source: str, image: Image.Image, config: PipelineConfig) -> None:
    if has_more_frames_than(image, config.max_frames):
        raise _refuse(
            "too_many_frames",
            f"{source}: an animation of more than {config.max_frames:,} frames, over the "
            f"max_frames limit (only the first frame would be used)",
        )
