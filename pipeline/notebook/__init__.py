"""Following and inspecting a batch from a Jupyter notebook.

>>> from pipeline.notebook import gallery, show_progress, timing_chart
>>> handle = pipeline.submit(["photos/"], "out/", client=client)
>>> show_progress(handle)        # a bar that updates in place; returns the final BatchStatus
>>> report = handle.result()
>>> gallery(report)              # sources beside their derivatives, failures with their reason
>>> bokeh.io.show(timing_chart(report))   # where the time per image goes, step by step

Everything renders as plain HTML (images as base64 data URIs) or a bokeh figure, so a notebook
executed headless by nbclient keeps its results in its outputs, and nothing beyond IPython and
bokeh is needed: no ipywidgets, whose state a headless run does not save. IPython and bokeh are
imported inside the functions, so ``import pipeline`` never needs them (workers, scripts).
"""

from pipeline.notebook.charts import timing_chart
from pipeline.notebook.gallery import gallery
from pipeline.notebook.html import HtmlFragment
from pipeline.notebook.progress import progress_view, show_progress

__all__ = ["HtmlFragment", "gallery", "progress_view", "show_progress", "timing_chart"]
