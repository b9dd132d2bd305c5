"""``--report FILE.html``: Dask's performance report of one batch, readable offline and naming
the batch. Runs in the driver's process.

Two things distributed's ``performance_report`` does by default that do not suit a batch:
its HTML loads BokehJS from a CDN (a blank page offline, behind a firewall, or years later), so
we ask bokeh for ``mode="inline"`` (BokehJS inside the file, about 1.5 MB more); and its
"Calling Code" section quotes the source of the frame that closed it, which for us is a
``contextlib`` frame of the driver thread, so we give it a description of the batch instead.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from distributed import Client, get_client, performance_report

from pipeline.config import PipelineConfig
from pipeline.redaction import redact_location


class _BatchReport(performance_report):
    """``performance_report`` whose "Calling Code" is the text given."""

    def __init__(self, filename: str, calling_code: str) -> None:
        super().__init__(filename=filename, mode="inline")  # type: ignore[no-untyped-call]
        self.calling_code = calling_code

    def __exit__(self, *exc_info: Any) -> None:
        # distributed inserts the code into the report's HTML as it is: escape it here.
        code = html.escape(self.calling_code)
        get_client().sync(self.__aexit__, *exc_info, code=code)


@contextmanager
def batch_performance_report(
    client: Client,
    path: str,
    *,
    batch_id: str,
    sources: Sequence[str],
    output: str,
    config: PipelineConfig,
) -> Iterator[None]:
    """Record a performance report of what runs inside, written to ``path`` at the end."""
    report = _BatchReport(path, describe_batch(batch_id, sources, output, config))
    # performance_report() finds its client through "the current client"; ours need not be
    # the default one (a notebook's client=, or the process's own LocalCluster).
    with client.as_current(), report:
        yield


def describe_batch(
    batch_id: str, sources: Sequence[str], output: str, config: PipelineConfig
) -> str:
    """The batch, as the report's "Calling Code" shows it."""
    shown = ", ".join(redact_location(source) for source in sources[:3])
    if len(sources) > 3:
        shown += f", … ({len(sources)} inputs)"
    sizes = " ".join(f"{s.name}={s.width}x{s.height}:{s.mode}" for s in config.sizes)
    formats = " ".join(f"{e.format}:{e.quality}" for e in config.encodings)
    return "\n".join(
        [
            f"thumbflow batch {batch_id}",
            f"  inputs:  {shown}",
            f"  output:  {redact_location(output)}",
            f"  sizes:   {sizes}",
            f"  formats: {formats}",
        ]
    )
