"""What every implementation must produce, and where it puts it.

The sizes and encoder settings come from thumbflow's default ``PipelineConfig`` so the
references cannot drift from what thumbflow makes. The pool implementations write
``<out>/<index:06d>/<size>.<ext>``; thumbflow writes its content-addressed layout, which
``verify`` maps back through the manifest.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from pipeline.config import Encoding, PipelineConfig, Size

CONFIG = PipelineConfig()
SIZES: tuple[Size, ...] = CONFIG.sizes
ENCODINGS: tuple[Encoding, ...] = CONFIG.encodings
# The references implement "fit" only (the default); a different default would make them
# produce different derivatives from thumbflow's, and every comparison would be void.
assert all(size.mode == "fit" for size in SIZES), "benchmarks assume fit-mode sizes"
assert {e.format for e in ENCODINGS} <= {"jpeg", "webp"}, "benchmarks assume JPEG and WebP"

# (size name, file extension): one derivative of one image.
Derivative = tuple[str, str]
DERIVATIVES: tuple[Derivative, ...] = tuple(
    (size.name, encoding.extension) for size in SIZES for encoding in ENCODINGS
)


def jpeg_quality() -> int:
    return next(e.quality for e in ENCODINGS if e.format == "jpeg")


def webp_settings() -> tuple[int, int]:
    """WebP (quality, method); a method other than thumbflow's would not be the same output."""
    webp = next(e for e in ENCODINGS if e.format == "webp")
    return webp.quality, webp.webp_method


def fit(width: int, height: int, size: Size) -> tuple[int, int]:
    """The box rule every implementation follows: aspect kept, never upscaled, never a zero
    side. Written out here rather than imported so the references do not run thumbflow code."""
    scale = min(size.width / width, size.height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


@dataclass(frozen=True)
class Job:
    """One image for a pool implementation: where it is and where its derivatives go."""

    index: int
    source: str
    out_root: str

    @property
    def folder(self) -> str:
        return os.path.join(self.out_root, f"{self.index:06d}")

    def path(self, size: str, extension: str) -> str:
        return os.path.join(self.folder, f"{size}.{extension}")

    def write(self, size: str, extension: str, data: bytes) -> None:
        """A plain write: the pools stand for the least a batch could do, so no temp+rename."""
        os.makedirs(self.folder, exist_ok=True)
        with open(self.path(size, extension), "wb") as stream:
            stream.write(data)
