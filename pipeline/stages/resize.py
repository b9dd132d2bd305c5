"""Decode once at the smallest scale that serves every size, then cascade down the sizes.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

Cost on a 12 MP photo (docs/design.md): full decode + LANCZOS from the original to three sizes is
~440 ms; a ½-scale ``draft`` decode + a large → medium → thumbnail cascade is ~110 ms for outputs
within 46-57 dB PSNR of the slow path.

The decoded image is first brought down to the largest size any derivative needs, and only then
turned upright and converted to sRGB: those steps then touch ~2 MP instead of the whole decoded
image, which is faster and keeps a worker's memory at one decoded image (~4 bytes a pixel).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import BinaryIO

from PIL import Image

from pipeline.config import PipelineConfig, Size
from pipeline.errors import Failure, ImageError
from pipeline.stages import colour
from pipeline.stages.geometry import Plan, draft_request, plan_for
from pipeline.stages.metadata import NOTHING, Carried, carried_metadata
from pipeline.stages.opening import decoding, is_truncation, open_image
from pipeline.stages.orientation import is_transposed, orientation_of, upright
from pipeline.stages.sources import open_binary
from pipeline.stages.validate import ImageHeader

RESAMPLING = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class Decoded:
    """The first frame's pixels as stored (not yet upright), at reduced scale where the format
    allows, in a mode that resizes correctly; and what the derivatives need to know about it."""

    image: Image.Image
    header: ImageHeader  # as displayed, with the orientation read while decoding
    profile: bytes | None  # the embedded ICC profile, if any
    carried: Carried  # what the derivatives carry besides pixels: nothing by default


def _decode_failure(source: str, error: BaseException, config: PipelineConfig) -> Failure:
    text = str(error) or type(error).__name__
    if not is_truncation(error):
        return Failure("resize", "decode_error", f"{source}: cannot decode ({text})")
    # In words that fit both callers (the CLI's --accept-truncated, the API's accept_truncated=):
    # the CLI's summary names its own flag.
    hint = "" if config.accept_truncated else "; accepting truncated files would use what is there"
    return Failure("resize", "truncated", f"{source}: the file ends early ({text}){hint}")


def plan_sizes(header: ImageHeader, config: PipelineConfig) -> list[tuple[Size, Plan]]:
    return [(size, plan_for(header.width, header.height, size)) for size in config.sizes]


def _largest_needed(header: ImageHeader, config: PipelineConfig) -> tuple[int, int]:
    """The smallest image that still holds every derivative, in the stored orientation."""
    plans = [plan for _, plan in plan_sizes(header, config)]
    return draft_request(plans, header.transposed)


def decode(source: str, header: ImageHeader, config: PipelineConfig) -> Decoded:
    """Load the first frame (nothing else of an animation, the primary image of an MPO)."""
    return _decode(source, lambda: open_binary(source), header, config)


def decode_bytes(source: str, data: bytes, header: ImageHeader, config: PipelineConfig) -> Decoded:
    """``decode`` of a file's bytes already in memory; ``source`` names it in failures."""
    return _decode(source, lambda: io.BytesIO(data), header, config)


def _decode(
    source: str, opened: Callable[[], BinaryIO], header: ImageHeader, config: PipelineConfig
) -> Decoded:
    try:
        with opened() as stream:
            image = open_image(stream, config.allow_formats)
            with decoding(accept_truncated=config.accept_truncated):
                # draft() needs the exact box: thumbnail()'s reducing_gap would ask for twice
                # the size and lose the reduced-scale decode.
                image.draft(None, _largest_needed(header, config))
                image.load()
            # Read again now that the pixels are loaded: a PNG may keep its EXIF after them.
            orientation = orientation_of(image, loaded=True)
            carried = carried_metadata(image) if config.keep_metadata else NOTHING
            pixels = colour.resizable(image)
    except Exception as error:  # Pillow raises many types for damaged data; all are this image's
        raise ImageError(_decode_failure(source, error, config)) from None
    profile = image.info.get("icc_profile") or None
    carried = replace(carried, icc_profile=_profile_to_keep(pixels.mode, profile, config))
    return Decoded(pixels, as_oriented(header, orientation), profile, carried)


def _profile_to_keep(mode: str, profile: bytes | None, config: PipelineConfig) -> bytes | None:
    if config.colour == "srgb":
        return None
    elif config.colour == "keep":
        return colour.kept_profile(mode, profile)
    else:
        raise AssertionError(f"unknown colour handling {config.colour!r}")


def as_oriented(header: ImageHeader, orientation: int) -> ImageHeader:
    """The header as displayed under ``orientation`` (found late for a PNG's trailing EXIF)."""
    if orientation == header.orientation:
        return header
    turned = is_transposed(orientation) != header.transposed
    width, height = (header.height, header.width) if turned else (header.width, header.height)
    return replace(header, width=width, height=height, orientation=orientation)


def _shape(scaled: Image.Image, plan: Plan, background: tuple[int, int, int]) -> Image.Image:
    if plan.crop is not None:
        return scaled.crop(plan.crop)
    if plan.canvas is not None:
        # A picture with alpha is padded with transparency: WebP and AVIF keep it, and the
        # JPEG flattens it onto the background like the picture's own transparent pixels.
        fill = (*background, 0) if scaled.mode in ("RGBA", "LA") else background
        canvas_mode = "RGBA" if scaled.mode in ("RGBA", "LA") else "RGB"
        canvas = Image.new(canvas_mode, plan.canvas, fill)
        left = (plan.canvas[0] - scaled.width) // 2
        top = (plan.canvas[1] - scaled.height) // 2
        canvas.paste(scaled.convert(canvas_mode), (left, top))
        return canvas
    return scaled


def cascade(
    decoded: Decoded, config: PipelineConfig, resampling: Image.Resampling = RESAMPLING
) -> dict[str, Image.Image]:
    """Every configured size, keyed by name: the largest made from the decoded image, each
    smaller one from the smallest larger result already made.

    ``resampling`` is there for the benchmarks: LANCZOS is what keeps every size within 38 dB of
    a full decode resized with LANCZOS; BICUBIC, HAMMING and BILINEAR save 30-50 % of the
    resizing but fall to 28-36 dB on thumbnails (``python -m benchmarks resampling``)."""
    largest = _largest_needed(decoded.header, config)
    reduced = decoded.image
    if reduced.size != largest:
        reduced = reduced.resize(largest, resampling)
    pixels = upright(reduced, decoded.header.orientation)
    if not decoded.carried.icc_profile:  # a kept profile describes the pixels as they are
        pixels = colour.to_srgb(pixels, decoded.profile)
    if pixels is decoded.image:
        # Nothing was resized, turned or converted, so this is still the opened file: an encoder
        # would walk all of its frames (AVIF does, to see if an animation is grey) through a
        # closed stream. A plain copy is at most the size of the largest derivative.
        pixels = pixels.copy()
    # Every size is made from these pixels and inherits their info; with none, no encoder can
    # copy a comment, EXIF or profile by itself (JPEG copies comments, AVIF profiles).
    pixels.info = {}
    results: dict[str, Image.Image] = {}
    previous = pixels
    planned = plan_sizes(decoded.header, config)
    for size, plan in sorted(planned, key=lambda item: item[1].scaled, reverse=True):
        width, height = plan.scaled
        source = previous if previous.width >= width and previous.height >= height else pixels
        scaled = source if source.size == plan.scaled else source.resize(plan.scaled, resampling)
        previous = scaled
        results[size.name] = _shape(scaled, plan, config.background)
    return results


def render_sizes(
    source: str, header: ImageHeader, config: PipelineConfig
) -> dict[str, Image.Image]:
    """Every configured size of one image, keyed by size name (pixels only: what they carry
    besides, for ``encode``, is ``decode(...).carried``)."""
    return cascade(decode(source, header, config), config)
