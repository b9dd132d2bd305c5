"""thumbflow with 1 and then 2 workers on the photos, interleaved: how well does it scale?

With one worker the client and the scheduler still have the second core to themselves, so this
is the speed-up from a second worker process, not from a second core.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks import runners
from benchmarks.report import median, progress, table, verdict
from benchmarks.workloads import Workload, read_through

TARGET = 1.7


def run(workload: Workload, rounds: int, scratch: Path, warm: str) -> str:
    read_through(workload.sources)
    counts = [1, 2]
    walls: dict[int, list[float]] = {count: [] for count in counts}
    others: dict[int, list[float]] = {count: [] for count in counts}
    for round_number in range(rounds):
        order = counts if round_number % 2 == 0 else counts[::-1]
        for workers in order:
            out = scratch / f"speedup-{workers}-{round_number}"
            result, _ = runners.run_thumbflow(workload.sources, out, warm, workers=workers)
            runners.remove(out)
            walls[workers].append(result.wall_s)
            others[workers].append(result.others_s / result.wall_s)
            progress(
                f"  round {round_number + 1}/{rounds}, {workers} worker(s): {result.wall_s:.2f} s"
            )
    rows = [
        [
            workers,
            f"{median(walls[workers]):.2f}",
            f"{len(workload.sources) / median(walls[workers]):.2f}",
            " / ".join(f"{w:.2f}" for w in walls[workers]),
            " / ".join(f"{load:.1f}" for load in others[workers]),
        ]
        for workers in counts
    ]
    ratio = median(walls[1]) / median(walls[2])
    lines = [
        table(
            [
                "workers",
                "wall s (median)",
                "images/s",
                "walls per round, s",
                "other work, cores, per round",
            ],
            rows,
        ),
        "",
        table(
            ["target", "measured", "verdict"],
            [[f"1 → 2 workers ≥ {TARGET}x", f"{ratio:.2f}x", verdict(ratio >= TARGET)]],
        ),
    ]
    return "\n".join(lines)
