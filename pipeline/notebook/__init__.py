"""Following and inspecting a batch from a Jupyter notebook.

>>> from pipeline.notebook import gallery, show_progress, timing_chart
>>> handle = pipeline.submit(["photos/"], "out/", client=client)
>>> show_progress(handle)        # a bar that updates in place; returns the final BatchStatus
>>> report = handle.result()
>>> gallery(report)              # sources beside their derivatives, failures with their reason
>>> timing_chart(report)          # where the time per image goes, step by step (an SVG)

Everything renders as plain HTML (images as base64 data URIs) or SVG, so a notebook executed
headless by nbclient keeps its results in its outputs, small, and they show wherever the notebook
is opened; nothing beyond IPython is needed: no ipywidgets, whose state a headless run does not
save, and no JavaScript, which Jupyter does not run in a notebook it has not trusted. IPython is
imported inside the functions, so ``import pipeline`` never needs it (workers, scripts).
"""

from pipeline.notebook.charts import SvgChart, timing_chart
from pipeline.notebook.gallery import gallery
from pipeline.notebook.html import HtmlFragment
from pipeline.notebook.progress import progress_view, show_progress

__all__ = ["HtmlFragment", "SvgChart", "gallery", "progress_view", "show_progress", "timing_chart"]
