"""thumbflow's benchmark harness: ``python -m benchmarks --help``.

Every implementation compared here writes the same derivatives (the sizes and encoder settings
of thumbflow's default ``PipelineConfig``), and the harness checks that they did before it
prints a number. Nothing here is imported by ``pipeline``; the optional peers (OpenCV, pyvips)
are skipped with a note when they are not installed.
"""
