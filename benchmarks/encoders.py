"""Encoder speed knobs: CPU against bytes for every setting, on the sizes thumbflow makes.

Each photo is rendered once with thumbflow's own stages (the default sizes); then every setting
encodes those same pixels, settings interleaved within each photo so that a busy moment of the
shared machine is spread over all of them. CPU time of this one process is what is measured
(``time.process_time``), which the other work on the machine barely moves; bytes are exact, and
PSNR against the rendered pixels shows what each setting gives up.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

from PIL import Image

from benchmarks.report import progress, table
from benchmarks.spec import CONFIG
from benchmarks.verify import psnr
from pipeline.config import DEFAULT_QUALITY, Encoding, FormatName
from pipeline.stages.encode import encode
from pipeline.stages.resize import render_sizes
from pipeline.stages.validate import read_header


def _default(fmt: FormatName) -> Encoding:
    return Encoding(format=fmt, quality=DEFAULT_QUALITY[fmt])


@dataclass(frozen=True)
class Setting:
    label: str
    encoding: Encoding

    @property
    def is_default(self) -> bool:
        return self.encoding == _default(self.encoding.format)


def _setting(fmt: FormatName, label: str, **knobs: bool | int) -> Setting:
    encoding = replace(_default(fmt), **knobs)  # type: ignore[arg-type]
    return Setting(label + (" (default)" if encoding == _default(fmt) else ""), encoding)


# Each knob varied alone from its format's default quality and settings.
SETTINGS: tuple[Setting, ...] = (
    _setting("jpeg", "JPEG q85, baseline"),
    _setting("jpeg", "JPEG q85, optimize", jpeg_optimize=True),
    _setting("jpeg", "JPEG q85, progressive", jpeg_progressive=True),
    _setting("jpeg", "JPEG q85, progressive + optimize", jpeg_progressive=True, jpeg_optimize=True),
    *(_setting("webp", f"WebP q80, method {method}", webp_method=method) for method in range(7)),
    *(_setting("avif", f"AVIF q60, speed {speed}", avif_speed=speed) for speed in (10, 8, 6, 4)),
)


@dataclass
class Tally:
    cpu_s: float = 0.0
    size_bytes: int = 0
    psnrs: list[float] = field(default_factory=list)

    def add(self, cpu_s: float, size_bytes: int, quality_db: float) -> None:
        self.cpu_s += cpu_s
        self.size_bytes += size_bytes
        self.psnrs.append(quality_db)


def _decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def measure(photos: list[str]) -> dict[str, Tally]:
    tallies: dict[str, Tally] = defaultdict(Tally)
    for number, photo in enumerate(photos, 1):
        progress(f"  encoders: {number}/{len(photos)} {Path(photo).name}")
        header = read_header(photo, os.path.getsize(photo), CONFIG)
        rendered = render_sizes(photo, header, CONFIG)
        for setting in SETTINGS:
            for image in rendered.values():
                started = time.process_time()
                data = encode(image, setting.encoding, CONFIG.background)
                spent = time.process_time() - started
                quality_db = psnr(image.convert("RGB"), _decoded(data))
                tallies[setting.label].add(spent, len(data), quality_db)
    return tallies


def run(photos: list[str]) -> str:
    tallies = measure(photos)
    count = len(photos)
    defaults = {s.encoding.format: tallies[s.label] for s in SETTINGS if s.is_default}
    rows = []
    for setting in SETTINGS:
        tally = tallies[setting.label]
        default = defaults[setting.encoding.format]
        rows.append(
            [
                setting.label,
                f"{tally.cpu_s / count * 1000:.1f}",
                f"{tally.cpu_s / default.cpu_s:.2f}",
                f"{tally.size_bytes / count / 1024:.0f}",
                f"{tally.size_bytes / default.size_bytes:.3f}",
                f"{statistics.median(tally.psnrs):.1f}",
            ]
        )
    headers = [
        "setting",
        "CPU ms/photo (3 sizes)",
        "CPU vs default",
        "KiB/photo",
        "bytes vs default",
        "median PSNR, dB",
    ]
    return table(headers, rows)
