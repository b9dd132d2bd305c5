"""Where a batch's time goes, step by step, as a bokeh chart. Runs in the notebook's kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline.results import BatchReport

if TYPE_CHECKING:
    import bokeh.plotting


def timing_chart(report: BatchReport) -> bokeh.plotting.figure:
    """A bokeh bar chart of ``report.timings``: median and 95th-percentile milliseconds per
    image for each step, in pipeline order, with each step's total seconds in its label.

    The median shows the usual cost of a step, the 95th percentile its slow tail (a few camera
    photos among thumbnails), and the totals which step to speed up first. Show it with
    ``bokeh.io.output_notebook(bokeh.resources.INLINE)`` (BokehJS inside the notebook, so
    it shows offline) then ``bokeh.io.show(chart)``.
    """
    from bokeh.models import ColumnDataSource, DataRange1d, FactorRange, HoverTool
    from bokeh.plotting import figure
    from bokeh.transform import factor_cmap

    statistics = ("p50", "p95")
    rows: dict[str, list[Any]] = {
        "factor": [], "step": [], "statistic": [], "ms": [], "count": [], "total_s": [],
    }  # fmt: skip
    for step, timing in report.timings.items():
        label = f"{step} ({timing.total_s:.2f} s in all)"
        for statistic, milliseconds in zip(statistics, (timing.p50_ms, timing.p95_ms), strict=True):
            rows["factor"].append((label, statistic))
            rows["step"].append(step)
            rows["statistic"].append(statistic)
            rows["ms"].append(milliseconds)
            rows["count"].append(timing.count)
            rows["total_s"].append(timing.total_s)
    # Categorical y axes run bottom-up; reversed, the first step (hash) is at the top.
    factors = list(reversed(rows["factor"]))
    chart = figure(
        y_range=FactorRange(*factors),
        x_range=DataRange1d(start=0),
        height=80 + 36 * len(report.timings),
        width=640,
        title=f"Time per image by step, batch {report.status.batch_id}",
        x_axis_label="milliseconds per image",
        toolbar_location=None,
    )
    chart.hbar(
        y="factor",
        right="ms",
        height=0.8,
        source=ColumnDataSource(rows),
        fill_color=factor_cmap("factor", ["#4c78a8", "#f58518"], statistics, start=1, end=2),
        line_color=None,
        legend_field="statistic",
    )
    chart.add_tools(
        HoverTool(
            tooltips=[
                ("step", "@step"),
                ("statistic", "@statistic"),
                ("ms per image", "@ms{0.0}"),
                ("images", "@count"),
                ("seconds in all", "@total_s{0.00}"),
            ]
        )
    )
    chart.ygrid.grid_line_color = None
    chart.legend.location = "bottom_right"
    return chart
