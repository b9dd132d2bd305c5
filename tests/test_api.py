"""The public surface is small and pinned: changing it is a deliberate act."""

from __future__ import annotations

import inspect

import pytest

import pipeline


def test_public_names_are_pinned() -> None:
    assert pipeline.__all__ == [
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
    assert pipeline.__all__ == sorted(pipeline.__all__)


def test_entry_points_take_inputs_output_and_keyword_only_options() -> None:
    options = [
        "config", "client", "scheduler", "workers", "security",
        "redis_url", "require_redis", "redis_ttl_s", "performance_report", "url_column",
        "keep_columns", "storage_options",
    ]  # fmt: skip
    for function, extra in ((pipeline.submit, ["detached"]), (pipeline.run, [])):
        parameters = inspect.signature(function).parameters
        assert list(parameters) == ["inputs", "output", *options, *extra]
        keyword_only = [name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY]
        assert keyword_only == [*options, *extra]


def test_handle_surface() -> None:
    public = {name for name in dir(pipeline.BatchHandle) if not name.startswith("_")}
    assert public == {
        "batch_id", "cancel", "dashboard_link", "done", "manifest", "output", "result", "status",
    }  # fmt: skip


def test_status_functions_take_an_id_and_a_keyword_only_store() -> None:
    for function in (pipeline.status, pipeline.cancel):
        parameters = inspect.signature(function).parameters
        assert list(parameters) == ["batch_id", "redis_url"]
    assert list(inspect.signature(pipeline.list_batches).parameters) == ["redis_url", "limit"]


def test_exception_tree() -> None:
    for error in (pipeline.ConfigError, pipeline.InputError, pipeline.OutputError,
                  pipeline.ClusterError, pipeline.ProgressStoreUnavailable,
                  pipeline.BatchNotFound):  # fmt: skip
        assert issubclass(error, pipeline.ThumbflowError)
    assert issubclass(pipeline.ConfigError, ValueError)


def test_a_status_in_an_unknown_state_is_refused_not_guessed() -> None:
    row = {"batch_id": "b", "state": "paused", "total": 1, "ok": 0, "duplicate": 0,
           "failed": 0, "cancelled": 0, "elapsed_s": 0.0}  # fmt: skip
    with pytest.raises(ValueError, match="unknown state 'paused'"):
        pipeline.BatchStatus.from_json(row)
    assert pipeline.BatchStatus.from_json({**row, "state": "done"}).finished
