"""A running task stops at its next image once its batch is cancelled.

``client.cancel`` cannot stop a task that is running; without its own checks a chunk's encode
task would go on writing every image of the chunk after the user cancelled."""

from __future__ import annotations

import time
from pathlib import Path

from distributed import Client

from pipeline.config import Encoding, PipelineConfig
from pipeline.graph import BatchGraph
from pipeline.samples import photo_like
from pipeline.storage import OutputRoot
from pipeline.worker.cancellation import running_tasks
from tests.helpers import leftover_temporaries, wait_until

IMAGES = 12


def test_a_cancelled_chunk_stops_at_its_next_image(cluster_client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    items = []
    for number in range(IMAGES):
        path = folder / f"{number:02d}.jpg"
        photo_like(1600, 1200, seed=100 + number).save(path, quality=90)
        items.append((number, str(path)))
    # WebP at its slowest effort: each image takes a good fraction of a second to encode
    config = PipelineConfig(encodings=(Encoding(format="webp", quality=80, webp_method=6),))
    output = tmp_path / "out"
    graph = BatchGraph("20261201-000000-cancel", config, OutputRoot(str(output)))
    hashed = cluster_client.compute(graph.hash_task(0, items)).result()
    encode = cluster_client.compute(
        graph.process_tasks(0, hashed, frozenset(range(IMAGES))), optimize_graph=False
    )
    wait_until(lambda: any(output.rglob("record-*.json")), timeout=120)
    cancelled_at = time.monotonic()
    cluster_client.cancel(encode)

    def stopped() -> bool:
        return sum(cluster_client.run(running_tasks, graph.batch_id).values()) == 0

    wait_until(stopped, timeout=60)
    took = time.monotonic() - cancelled_at
    written = len(list(output.rglob("record-*.json")))
    assert written <= 3, f"{written} of {IMAGES} images written after cancel"
    assert took < 5, f"the task ran on for {took:.1f} s"
    assert leftover_temporaries(output) == []
