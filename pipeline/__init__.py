"""thumbflow: batches of images to web derivatives on a Dask cluster.

>>> import pipeline
>>> handle = pipeline.submit(["photos/"], "out/")   # returns at once
>>> handle.status()
>>> report = handle.result()
"""

from pipeline._version import __version__
from pipeline.api import BatchHandle, run, submit
from pipeline.batch import BatchReport, BatchStatus
from pipeline.config import Encoding, PipelineConfig, Size
from pipeline.errors import (
    ClusterError,
    ConfigError,
    Failure,
    InputError,
    OutputError,
    ThumbflowError,
)

__all__ = [
    "BatchHandle",
    "BatchReport",
    "BatchStatus",
    "ClusterError",
    "ConfigError",
    "Encoding",
    "Failure",
    "InputError",
    "OutputError",
    "PipelineConfig",
    "Size",
    "ThumbflowError",
    "__version__",
    "run",
    "submit",
]
