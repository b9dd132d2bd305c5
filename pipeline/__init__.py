"""thumbflow: batches of images to web derivatives on a Dask cluster. The public API, imported
in the user's process; workers and the scheduler import the package too, to run its tasks.

>>> import pipeline
>>> handle = pipeline.submit(["photos/"], "out/")   # returns at once
>>> handle.status()
>>> report = handle.result()
"""

from pipeline._version import __version__
from pipeline.api import BatchHandle, cancel, list_batches, run, status, submit
from pipeline.config import Encoding, FetchSettings, PipelineConfig, Size
from pipeline.errors import (
    BatchNotFound,
    ClusterError,
    ConfigError,
    Failure,
    InputError,
    InputWarning,
    OutputError,
    ProgressStoreUnavailable,
    ProgressStoreWarning,
    ThumbflowError,
    UnsupportedURL,
)
from pipeline.results import BatchReport, BatchStatus

__all__ = [
    "BatchHandle",
    "BatchNotFound",
    "BatchReport",
    "BatchStatus",
    "ClusterError",
    "ConfigError",
    "Encoding",
    "Failure",
    "FetchSettings",
    "InputError",
    "InputWarning",
    "OutputError",
    "PipelineConfig",
    "ProgressStoreUnavailable",
    "ProgressStoreWarning",
    "Size",
    "ThumbflowError",
    "UnsupportedURL",
    "__version__",
    "cancel",
    "list_batches",
    "run",
    "status",
    "submit",
]
