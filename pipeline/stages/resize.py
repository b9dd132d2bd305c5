"""Decode once at the smallest scale that serves every size, then cascade down the sizes.

Cost on a 12 MP photo (DESIGN.md): full decode + LANCZOS from the original to three sizes is
~440 ms; a ½-scale ``draft`` decode + a large → medium → thumbnail cascade is ~110 ms for outputs
within 46-57 dB PSNR of the slow path.
"""

from __future__ import annotations

import warnings

from PIL import Image, ImageOps

from pipeline.config import PipelineConfig, Size
from pipeline.errors import Failure, ImageError
from pipeline.stages import colour
from pipeline.stages.geometry import Plan, draft_request, plan_for
from pipeline.stages.sources import open_binary
from pipeline.stages.validate import ACCEPTED_FORMATS, ImageHeader

RESAMPLING = Image.Resampling.LANCZOS


def _decode_failure(source: str, error: BaseException) -> Failure:
    text = str(error)
    if isinstance(error, EOFError) or "truncated" in text.lower():
        return Failure("resize", "truncated", f"{source}: the file ends early ({text or 'EOF'})")
    return Failure("resize", "decode_error", f"{source}: cannot decode ({text})")


def decode(source: str, header: ImageHeader, plans: list[Plan]) -> Image.Image:
    """The first frame, upright, in a working mode, at reduced scale where the format allows."""
    try:
        with open_binary(source) as stream, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(stream, formats=ACCEPTED_FORMATS)
            # draft() needs the exact box: thumbnail()'s reducing_gap would ask for twice the
            # size and lose the reduced-scale decode.
            image.draft(None, draft_request(plans, header.transposed))
            image.load()
    except ImageError:
        raise
    except Exception as error:  # Pillow raises many types for damaged data; all are this image's
        raise ImageError(_decode_failure(source, error)) from None
    upright = ImageOps.exif_transpose(image) if header.orientation != 1 else image
    return colour.normalise(upright)


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


def render_sizes(
    source: str, header: ImageHeader, config: PipelineConfig
) -> dict[str, Image.Image]:
    """Every configured size of one image, keyed by size name."""
    planned = [(size, plan_for(header.width, header.height, size)) for size in config.sizes]
    decoded = decode(source, header, [plan for _, plan in planned])
    return cascade(decoded, planned, config.background)
