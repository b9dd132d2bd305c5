"""thumbflow from this tree against thumbflow from another checkout, interleaved.

For trying a change to ``pipeline/`` before it lands: copy the repo, change the copy, and run
``python -m benchmarks ab /path/to/copy``. Each run is a fresh process whose working directory
is the checkout being measured, so it imports that checkout's ``pipeline`` (and its
``benchmarks`` if it has one, else this one's); wall and CPU time are measured as in ``compare``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import runners
from benchmarks.report import median, progress, table
from benchmarks.workloads import Workload, read_through

HARNESS_ROOT = Path(__file__).resolve().parents[1]


def _one_run(tree: Path, sources_file: Path, out: Path, warm: str) -> dict[str, float]:
    environment = os.environ | {
        "PYTHONPATH": os.pathsep.join([str(tree), str(HARNESS_ROOT)]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.single", str(sources_file), str(out), warm],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"run in {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run(workload: Workload, other: Path, rounds: int, scratch: Path, warm: str) -> str:
    read_through(workload.sources)
    sources_file = scratch / f"{workload.name}-sources.txt"
    sources_file.write_text("\n".join(workload.sources), encoding="utf-8")
    trees = {"this tree": HARNESS_ROOT, f"other: {other}": other.resolve()}
    walls: dict[str, list[float]] = {name: [] for name in trees}
    cpus: dict[str, list[float]] = {name: [] for name in trees}
    for round_number in range(rounds):
        order = list(trees) if round_number % 2 == 0 else list(trees)[::-1]
        for name in order:
            out = scratch / f"ab-{round_number}"
            result = _one_run(trees[name], sources_file, out, warm)
            runners.remove(out)
            if result["ok"] != len(workload.sources):
                progress(f"  {name}: only {result['ok']} of {len(workload.sources)} images ok")
            walls[name].append(result["wall_s"])
            cpus[name].append(result["cpu_s"])
            progress(
                f"  round {round_number + 1}/{rounds} {name}: {result['wall_s']:.2f} s wall, "
                f"{result['cpu_s']:.2f} s CPU"
            )
    count = len(workload.sources)
    rows = [
        [
            name,
            f"{median(walls[name]):.2f}",
            f"{count / median(walls[name]):.2f}",
            f"{median(cpus[name]) / count * 1000:.0f}",
            " / ".join(f"{w:.2f}" for w in walls[name]),
        ]
        for name in trees
    ]
    headers = ["thumbflow from", "wall s (median)", "images/s", "CPU ms/image", "walls, s"]
    return table(headers, rows)
