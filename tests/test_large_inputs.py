"""A very large photo costs a worker what its reduced-scale decode needs, not its full size.

Measured in a fresh process, as a worker would run it: a 100 MP JPEG (10000x10000) through
read_header → render_sizes → encode. Decoded in full it would need 400 MB (Pillow stores RGB in
4 bytes a pixel); the draft decode at 1/8 needs ~5 MB, and the measured peak grows by ~20 MB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MAKE = """
import sys
from pipeline.samples import photo_like
photo_like(10_000, 10_000, seed=1).save(sys.argv[1], "JPEG", quality=85)
"""

PROCESS = """
import json, os, resource, sys, time
from pipeline.config import PipelineConfig
from pipeline.stages.encode import encode
from pipeline.stages.resize import render_sizes
from pipeline.stages.validate import read_header

path, config = sys.argv[1], PipelineConfig()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
header = read_header(path, os.path.getsize(path), config)
outputs = [
    len(encode(image, encoding, config.background))
    for image in render_sizes(path, header, config).values()
    for encoding in config.encodings
]
elapsed = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"before_kb": before, "peak_kb": peak, "seconds": elapsed, "outputs": outputs}))
"""


def run_python(code: str, *args: str) -> str:
    """In a fresh interpreter that imports this checkout's ``pipeline``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.timeout(120)
def test_a_100_megapixel_jpeg_is_processed_in_bounded_memory(tmp_path):
    path = tmp_path / "100mp.jpg"
    run_python(MAKE, str(path))
    measured = json.loads(run_python(PROCESS, str(path)))
    grown_mb = (measured["peak_kb"] - measured["before_kb"]) / 1024
    print(
        f"100 MP JPEG: peak RSS {measured['peak_kb'] / 1024:.0f} MB (+{grown_mb:.0f} MB), "
        f"{measured['seconds'] * 1000:.0f} ms"
    )
    assert len(measured["outputs"]) == 6
    assert all(size > 0 for size in measured["outputs"])
    assert grown_mb < 150, measured  # decoding it whole would add 400 MB
    assert measured["seconds"] < 10, measured
