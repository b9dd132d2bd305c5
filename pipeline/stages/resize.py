"""Decode once at the smallest scale that serves every size, then cascade down the sizes.

Cost on a 12 MP photo (DESIGN.md): full decode + LANCZOS from the original to three sizes is
~440 ms; a ½-scale ``draft`` decode + a large → medium → thumbnail cascade is ~110 ms for outputs
within 46-57 dB PSNR of the slow path.
"""

from __future__ import annotations

from dataclasses import replace

from PIL import Image, ImageOps

from pipeline.config import PipelineConfig, Size
from pipeline.errors import Failure, ImageError
from pipeline.stages import colour
from pipeline.stages.geometry import Plan, draft_request, plan_for
from pipeline.stages.opening import decoding, is_truncation, open_image
from pipeline.stages.sources import open_binary
from pipeline.stages.validate import ImageHeader, orientation_of

RESAMPLING = Image.Resampling.LANCZOS


def _decode_failure(source: str, error: BaseException) -> Failure:
    text = str(error) or type(error).__name__
    if is_truncation(error):
        return Failure("resize", "truncated", f"{source}: the file ends early ({text})")
    return Failure("resize", "decode_error", f"{source}: cannot decode ({text})")


def decode(source: str, header: ImageHeader, plans: list[Plan]) -> tuple[Image.Image, int]:
    """The first frame, upright, in a working mode, at reduced scale where the format allows,
    with no metadata left on it; and the orientation that was applied."""
    try:
        with open_binary(source) as stream, decoding():
            image = open_image(stream)
            # draft() needs the exact box: thumbnail()'s reducing_gap would ask for twice the
            # size and lose the reduced-scale decode.
            image.draft(None, draft_request(plans, header.transposed))
            image.load()
    except Exception as error:  # Pillow raises many types for damaged data; all are this image's
        raise ImageError(_decode_failure(source, error)) from None
    # Read again now that the pixels are loaded: a PNG may keep its EXIF after the image data.
    orientation = orientation_of(image, loaded=True)
    upright = ImageOps.exif_transpose(image) if orientation != 1 else image
    normalised = colour.normalise(upright)
    # Derivatives are made from this image and inherit its info; with none, no encoder can copy
    # EXIF, GPS, XMP or a colour profile into them (AVIF's would copy the ICC profile).
    normalised.info = {}
    return normalised, orientation


def as_oriented(header: ImageHeader, orientation: int) -> ImageHeader:
    """The header as displayed under ``orientation`` (found late for a PNG's trailing EXIF)."""
    if orientation == header.orientation:
        return header
    turned = (orientation in (5, 6, 7, 8)) != header.transposed
    width, height = (header.height, header.width) if turned else (header.width, header.height)
    return replace(header, width=width, height=height, orientation=orientation)


def _shape(scaled: Image.Image, plan: Plan, background: tuple[int, int, int]) -> Image.Image:
    if plan.crop is not None:
        return scaled.crop(plan.crop)
    if plan.canvas is not None:
        fill = (*background, 255) if scaled.mode in ("RGBA", "LA") else background
        canvas_mode = "RGBA" if scaled.mode in ("RGBA", "LA") else "RGB"
        canvas = Image.new(canvas_mode, plan.canvas, fill)
        left = (plan.canvas[0] - scaled.width) // 2
        top = (plan.canvas[1] - scaled.height) // 2
        canvas.paste(scaled.convert(canvas_mode), (left, top))
        return canvas
    return scaled


def cascade(
    decoded: Image.Image, planned: list[tuple[Size, Plan]], background: tuple[int, int, int]
) -> dict[str, Image.Image]:
    """Each size is resized from the smallest larger result already made, largest first."""
    results: dict[str, Image.Image] = {}
    previous = decoded
    for size, plan in sorted(planned, key=lambda item: item[1].scaled, reverse=True):
        width, height = plan.scaled
        source = previous if previous.width >= width and previous.height >= height else decoded
        scaled = source if source.size == plan.scaled else source.resize(plan.scaled, RESAMPLING)
        previous = scaled
        results[size.name] = _shape(scaled, plan, background)
    return results


def plan_sizes(header: ImageHeader, config: PipelineConfig) -> list[tuple[Size, Plan]]:
    return [(size, plan_for(header.width, header.height, size)) for size in config.sizes]


def render_sizes(
    source: str, header: ImageHeader, config: PipelineConfig
) -> dict[str, Image.Image]:
    """Every configured size of one image, keyed by size name."""
    planned = plan_sizes(header, config)
    decoded, orientation = decode(source, header, [plan for _, plan in planned])
    if orientation != header.orientation:
        planned = plan_sizes(as_oriented(header, orientation), config)
    return cascade(decoded, planned, config.background)
