"""Did every implementation write the same derivatives? Counts, sizes, and PSNR against seed.

Each derivative is decoded and compared in RGB with the seed-style reference's file of the same
size and format. Where the sizes differ by a pixel (rounding in another library), the candidate
is resampled to the reference's size first: cropping would shift the content and measure the
misalignment rather than the image.
"""

from __future__ import annotations

import math
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context

from PIL import Image, ImageChops

from benchmarks.runners import Outputs
from benchmarks.spec import DERIVATIVES, Derivative


@dataclass(frozen=True)
class Check:
    """One derivative of one implementation against the reference's."""

    derivative: Derivative
    size: tuple[int, int] | None  # None: the file is missing or does not decode
    size_difference: int
    psnr_db: float


@dataclass
class Summary:
    """Everything ``verify`` found about one implementation."""

    expected: int = 0
    found: int = 0
    max_size_difference: int = 0
    psnrs: list[tuple[float, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.found == self.expected and self.max_size_difference <= 1

    @property
    def min_psnr(self) -> tuple[float, str]:
        return min(self.psnrs) if self.psnrs else (float("nan"), "")

    @property
    def median_psnr(self) -> float:
        finite = [value for value, _ in self.psnrs if math.isfinite(value)]
        return statistics.median(finite) if finite else float("inf")


def _rgb(path: str) -> Image.Image | None:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError):
        return None


def psnr(reference: Image.Image, candidate: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB over the three channels, with Pillow alone: the
    histogram of the absolute difference gives the sum of squared errors exactly."""
    if candidate.size != reference.size:
        candidate = candidate.resize(reference.size, Image.Resampling.LANCZOS)
    histogram = ImageChops.difference(reference, candidate).histogram()
    squared = sum(count * (value % 256) ** 2 for value, count in enumerate(histogram))
    mean = squared / (reference.width * reference.height * 3)
    return math.inf if mean == 0 else 10 * math.log10(255**2 / mean)


def check_image(
    reference_name: str,
    reference: dict[Derivative, str],
    candidates: dict[str, dict[Derivative, str]],
) -> dict[str, list[Check]]:
    """Every derivative of one source image, for every implementation."""
    results: dict[str, list[Check]] = {name: [] for name in candidates}
    for derivative in DERIVATIVES:
        expected = _rgb(reference[derivative]) if derivative in reference else None
        for name, paths in candidates.items():
            found = _rgb(paths[derivative]) if derivative in paths else None
            if found is None or expected is None:
                results[name].append(Check(derivative, None, 0, float("nan")))
                continue
            difference = max(abs(a - b) for a, b in zip(found.size, expected.size, strict=True))
            value = math.inf if name == reference_name else psnr(expected, found)
            results[name].append(Check(derivative, found.size, difference, value))
    return results


def verify(sources: list[str], runs: dict[str, Outputs], reference: str) -> dict[str, Summary]:
    """Check every implementation in ``runs`` against ``runs[reference]`` (the seed style);
    the reference itself is checked for completeness only."""
    summaries = {name: Summary() for name in runs}
    references = [runs[reference].get(source, {}) for source in sources]
    candidates = [{name: runs[name].get(source, {}) for name in runs} for source in sources]
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=get_context("spawn")) as pool:
        for source, checks in zip(
            sources,
            pool.map(check_image, [reference] * len(sources), references, candidates, chunksize=8),
            strict=True,
        ):
            for name, image_checks in checks.items():
                summary = summaries[name]
                for check in image_checks:
                    summary.expected += 1
                    if check.size is None:
                        continue
                    summary.found += 1
                    summary.max_size_difference = max(
                        summary.max_size_difference, check.size_difference
                    )
                    if name != reference:
                        size, extension = check.derivative
                        where = f"{os.path.basename(source)} {size}.{extension}"
                        summary.psnrs.append((check.psnr_db, where))
    return summaries
