"""Where each derivative's pixels come from: sizes for fit, cover and pad, from the source size.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

All functions work in the image's displayed orientation (after EXIF rotation) and never upscale:
a source smaller than the box keeps its own size, and each mode keeps its promise about shape
within that: ``fit`` the source's aspect ratio, ``cover`` the box's (a small source is cropped
to the box's shape, so an avatar is square whatever was uploaded), ``pad`` the exact box.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.config import Size

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Plan:
    """How to turn the source into one derivative: resize to ``scaled``, then optionally cut
    ``crop`` out of it (cover) or centre it on a ``canvas`` of the box's size (pad)."""

    scaled: tuple[int, int]
    crop: Box | None = None
    canvas: tuple[int, int] | None = None

    @property
    def output_size(self) -> tuple[int, int]:
        if self.canvas is not None:
            return self.canvas
        if self.crop is not None:
            left, top, right, bottom = self.crop
            return right - left, bottom - top
        return self.scaled


def fit_within(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The largest size with the source's aspect ratio that fits the box; never upscaled, never
    a zero side (a 12000x3 strip still gives a 150x1 thumbnail)."""
    scale = min(box_width / width, box_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def cover_box(width: int, height: int, box_width: int, box_height: int) -> tuple[int, int]:
    """The smallest size with the source's aspect ratio that covers the box (capped at the
    source: a small image is cropped, not enlarged)."""
    scale = min(max(box_width / width, box_height / height), 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def centred_crop(width: int, height: int, box_width: int, box_height: int) -> Box:
    """The middle of a ``width`` x ``height`` image in the box's shape: the box itself when the
    image covers it, else the largest region of the box's aspect ratio that the image holds."""
    crop_width, crop_height = fit_within(box_width, box_height, width, height)
    left, top = (width - crop_width) // 2, (height - crop_height) // 2
    return left, top, left + crop_width, top + crop_height


def plan_for(width: int, height: int, size: Size) -> Plan:
    if size.mode == "fit":
        return Plan(scaled=fit_within(width, height, size.width, size.height))
    elif size.mode == "cover":
        scaled = cover_box(width, height, size.width, size.height)
        return Plan(scaled=scaled, crop=centred_crop(*scaled, size.width, size.height))
    elif size.mode == "pad":
        scaled = fit_within(width, height, size.width, size.height)
        return Plan(scaled=scaled, canvas=(size.width, size.height))
    else:
        raise AssertionError(f"unknown resize mode {size.mode!r}")


def draft_request(plans: list[Plan], transposed: bool) -> tuple[int, int]:
    """The smallest decode that still holds every derivative, in the file's stored orientation:
    JPEG's ``draft`` then decodes at 1/2, 1/4 or 1/8 scale when that is enough."""
    width = max(plan.scaled[0] for plan in plans)
    height = max(plan.scaled[1] for plan in plans)
    return (height, width) if transposed else (width, height)
