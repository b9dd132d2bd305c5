"""Per-image steps as plain eager functions: hash, validate, resize, encode.

Nothing here knows about Dask, Redis or the output layout; ``pipeline.worker.tasks`` applies
these to chunks of images inside the graph, and the tests call them directly.
"""
