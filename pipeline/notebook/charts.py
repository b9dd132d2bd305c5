"""Where a batch's time goes, step by step, as a static SVG bar chart. Runs in the notebook's
kernel.

Static on purpose. A bokeh chart in a saved notebook needs BokehJS: inlined, it made the
quickstart 8.3 MB for twelve bars; from a CDN, it is blank offline. Either way it is script
output, which Jupyter does not run in a notebook it did not execute itself (opened from a
repository, a colleague's copy) and GitHub never runs. An SVG is a few kilobytes, shows
everywhere a notebook is shown, and draws its labels where we put them: each step's name and
total horizontally beside its bars, each bar's milliseconds printed at its end.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

from pipeline.results import BatchReport, StepTiming

COLOURS = {"p50": "#4c78a8", "p95": "#f58518"}
FONT = "font-family:sans-serif"
FONT_PX = 12
CHAR_PX = 7.5  # a generous average advance of a 12 px sans-serif character
BAR_PX = 14
ROW_GAP_PX = 12  # between one step's pair of bars and the next
WIDTH_PX = 640
TOP_PX = 48  # title and legend
BOTTOM_PX = 44  # tick labels and the axis label
VALUE_PX = 70  # room right of the longest bar for its value


@dataclass(frozen=True, repr=False)
class SvgChart:
    """An SVG image for a notebook (``_repr_svg_``) with a plain-text form for consoles."""

    svg: str
    text: str

    def _repr_svg_(self) -> str:
        return self.svg

    def __repr__(self) -> str:
        return self.text


def timing_chart(report: BatchReport) -> SvgChart:
    """A bar chart of ``report.timings``: median (p50) and 95th-percentile (p95) milliseconds
    per image for each step, in pipeline order, with each step's total seconds beside its name.

    The median shows the usual cost of a step, the 95th percentile its slow tail (a few camera
    photos among thumbnails), and the totals which step to speed up first. In a notebook it
    shows as an image (the last expression of a cell, or ``display(chart)``); ``chart.svg`` is
    the SVG text, to save as a file.
    """
    title = f"Time per image by step, batch {report.status.batch_id}"
    timings = report.timings
    text = _as_text(title, timings)
    if not timings:
        svg = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="40">'
            f'<text x="4" y="24" style="{FONT};font-size:{FONT_PX}px">'
            f"{html.escape(title)}: no timings recorded</text></svg>"
        )
        return SvgChart(svg, text)

    labels = {step: (step, f"{timing.total_s:.2f} s in all") for step, timing in timings.items()}
    label_px = math.ceil(max(len(line) for pair in labels.values() for line in pair) * CHAR_PX)
    left = label_px + 16
    plot_px = WIDTH_PX - left - VALUE_PX
    row_px = 2 * BAR_PX + 2 + ROW_GAP_PX
    height = TOP_PX + row_px * len(timings) + BOTTOM_PX
    ticks = _ticks(max(max(t.p50_ms, t.p95_ms) for t in timings.values()))
    scale = plot_px / ticks[-1]
    bottom = TOP_PX + row_px * len(timings) - ROW_GAP_PX // 2

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH_PX}" height="{height}" '
        f'viewBox="0 0 {WIDTH_PX} {height}" style="{FONT};font-size:{FONT_PX}px">',
        f'<rect width="{WIDTH_PX}" height="{height}" fill="#fff"/>',
        f'<text x="4" y="18" style="font-weight:bold;font-size:14px">{html.escape(title)}</text>',
    ]
    for number, (name, colour) in enumerate(COLOURS.items()):
        x = left + number * 60
        parts.append(
            f'<rect x="{x}" y="28" width="12" height="12" fill="{colour}"/>'
            f'<text x="{x + 16}" y="38">{name}</text>'
        )
    for tick in ticks:
        tick_x = left + tick * scale
        parts.append(
            f'<line x1="{tick_x:.1f}" y1="{TOP_PX - 4}" x2="{tick_x:.1f}" y2="{bottom}" '
            'stroke="#e5e5e5"/>'
            f'<text class="tick" x="{tick_x:.1f}" y="{bottom + 14}" text-anchor="middle" '
            f'fill="#555">{tick:g}</text>'
        )
    for row, (step, timing) in enumerate(timings.items()):
        top = TOP_PX + row * row_px
        parts += _step_bars(step, timing, labels[step], top, left, scale)
    parts += [
        f'<line x1="{left}" y1="{TOP_PX - 4}" x2="{left}" y2="{bottom}" stroke="#888"/>',
        f'<text x="{left + plot_px / 2:.1f}" y="{height - 8}" text-anchor="middle" '
        'style="font-style:italic" fill="#333">milliseconds per image</text>',
        "</svg>",
    ]
    return SvgChart("".join(parts), text)


def _step_bars(
    step: str, timing: StepTiming, label: tuple[str, str], top: int, left: int, scale: float
) -> list[str]:
    """One step: its name and total right-aligned beside its two bars, one line per bar."""
    name, total = label
    parts = []
    for number, (statistic, milliseconds) in enumerate(
        (("p50", timing.p50_ms), ("p95", timing.p95_ms))
    ):
        y = top + number * (BAR_PX + 2)
        width = milliseconds * scale
        baseline = y + BAR_PX - 3
        parts.append(
            f'<rect class="bar" data-step="{html.escape(step)}" data-statistic="{statistic}" '
            f'data-ms="{milliseconds:.3f}" x="{left}" y="{y}" width="{width:.2f}" '
            f'height="{BAR_PX}" fill="{COLOURS[statistic]}"><title>{html.escape(step)} '
            f"{statistic}: {milliseconds:.1f} ms per image ({timing.count} images)</title></rect>"
            f'<text x="{left + width + 4:.1f}" y="{baseline}" fill="#333">'
            f"{milliseconds:.1f} ms</text>"
        )
    parts.append(
        f'<text class="label" x="{left - 8}" y="{top + BAR_PX - 3}" text-anchor="end" '
        f'style="font-weight:bold">{html.escape(name)}</text>'
        f'<text class="label" x="{left - 8}" y="{top + 2 * BAR_PX - 1}" text-anchor="end" '
        f'fill="#666">{html.escape(total)}</text>'
    )
    return parts


def _ticks(largest: float) -> list[float]:
    """Round tick values from 0 to at least ``largest``: steps of 1, 2 or 5 times a power of
    ten, at most 5 of them."""
    if largest <= 0:
        return [0.0, 1.0]
    magnitude = 10 ** math.floor(math.log10(largest))
    step = next(
        factor * magnitude for factor in (0.2, 0.5, 1, 2, 5) if largest / (factor * magnitude) <= 5
    )
    count = math.ceil(largest / step - 1e-9)
    return [round(step * index, 10) for index in range(count + 1)]


def _as_text(title: str, timings: dict[str, StepTiming]) -> str:
    lines = [f"{title} (ms per image: p50, p95; seconds in all)"]
    lines += [
        f"  {step:<10} {t.p50_ms:9.1f} {t.p95_ms:9.1f} {t.total_s:9.2f} s"
        for step, t in timings.items()
    ]
    return "\n".join(lines)
