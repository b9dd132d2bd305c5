"""Resampling filters: what a cheaper filter would save, and what it would cost in fidelity.

thumbflow decodes at reduced scale and cascades large → medium → thumbnail with LANCZOS. This
runs that same path (``decode`` + ``cascade``) with each of Pillow's downscaling filters and
compares every size with the slow obvious result: the full decode, turned upright, converted to
sRGB, resized with LANCZOS from the original (the pixels ``tests/test_fidelity.py`` guards,
before any encoder adds its own loss). CPU time of this one process, per photo, for the
cascade alone (the decode is the same for every filter).
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from pathlib import Path

from PIL import Image

from benchmarks.pillow_impls import full_decode
from benchmarks.report import progress, table
from benchmarks.spec import CONFIG
from benchmarks.verify import psnr
from pipeline.stages.resize import cascade, decode
from pipeline.stages.validate import read_header

FILTERS = (
    Image.Resampling.LANCZOS,  # thumbflow's
    Image.Resampling.BICUBIC,
    Image.Resampling.HAMMING,
    Image.Resampling.BILINEAR,
)
MIN_PSNR_DB = 38.0  # issue 5's bar, and tests/test_fidelity.py's


def run(photos: list[str]) -> str:
    cpu_s: dict[Image.Resampling, float] = defaultdict(float)
    lowest: dict[tuple[Image.Resampling, str], tuple[float, str]] = {}
    for number, photo in enumerate(photos, 1):
        progress(f"  resampling: {number}/{len(photos)} {Path(photo).name}")
        reference = full_decode(photo)
        header = read_header(photo, os.path.getsize(photo), CONFIG)
        for resampling in FILTERS:
            decoded = decode(photo, header, CONFIG)
            started = time.process_time()
            sizes = cascade(decoded, CONFIG, resampling)
            cpu_s[resampling] += time.process_time() - started
            for name, image in sizes.items():
                expected = reference.resize(image.size, Image.Resampling.LANCZOS)
                score = psnr(expected, image.convert("RGB"))
                key = (resampling, name)
                if key not in lowest or score < lowest[key][0]:
                    lowest[key] = (score, Path(photo).name)
    names = [size.name for size in sorted(CONFIG.sizes, key=lambda s: s.width * s.height)]
    rows = []
    for resampling in FILTERS:
        scores = [lowest[resampling, name][0] for name in names]
        rows.append(
            [
                resampling.name + (" (thumbflow)" if resampling is FILTERS[0] else ""),
                f"{cpu_s[resampling] / len(photos) * 1000:.1f}",
                f"{cpu_s[resampling] / cpu_s[FILTERS[0]]:.2f}",
                *(f"{score:.1f}" for score in scores),
                "yes" if min(scores) >= MIN_PSNR_DB else "no",
            ]
        )
    headers = [
        "filter",
        "cascade CPU ms/photo",
        "vs LANCZOS",
        *(f"lowest PSNR, {name}, dB" for name in names),
        f"every size ≥ {MIN_PSNR_DB:.0f} dB",
    ]
    return table(headers, rows)
