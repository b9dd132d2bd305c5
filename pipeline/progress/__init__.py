"""Batch progress in Redis: the key schema and its readers (``store``), and the per-image
callback with its delivery thread that the driver writes through (``publisher``)."""
