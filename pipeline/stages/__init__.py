"""Per-image steps as plain eager functions: hash, validate, resize, encode.
Runs on the workers (through ``pipeline.worker.tasks``); knows no Dask, callable anywhere.

Nothing here knows about Dask, Redis or the output layout; ``pipeline.worker.tasks`` applies
these to chunks of images inside the graph, and the tests call them directly.
"""
