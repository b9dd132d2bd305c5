"""One timed thumbflow run in a process of its own, for ``ab``: whichever ``pipeline`` this
process imports (``ab`` puts a checkout first on its path) is the one measured.

``python -m benchmarks.single SOURCES_FILE OUT WARM`` prints one JSON line: wall and CPU
seconds and the number of images that came out ok.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pipeline
from benchmarks import runners


def main() -> None:
    sources_file, out, warm = sys.argv[1:4]
    sources = Path(sources_file).read_text(encoding="utf-8").splitlines()
    run, report = runners.run_thumbflow(sources, Path(out), warm)
    result = {
        "wall_s": run.wall_s,
        "cpu_s": run.cpu_s,
        "ok": report.status.ok,
        "pipeline": str(Path(pipeline.__file__).parent),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
