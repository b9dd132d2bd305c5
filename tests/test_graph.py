"""Graph building: chunking by work, keys by step, and stages that stay free of Dask."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.config import PipelineConfig
from pipeline.graph import CHUNK_MAX_IMAGES, BatchGraph, plan_chunks
from pipeline.inputs import InputFile
from pipeline.keys import STEPS, belongs_to, make_key, parse_key
from pipeline.storage import OutputRoot
from pipeline.worker.tasks import ImageWork

STAGES = Path(__file__).resolve().parents[1] / "pipeline" / "stages"


def files(*sizes: int) -> list[InputFile]:
    return [InputFile(f"/in/{i}.jpg", size) for i, size in enumerate(sizes)]


@pytest.mark.parametrize(
    ("sizes", "parallelism", "expected"),
    [
        # camera photos over the target each get a task of their own
        ([5_000_000] * 3, 2, [[0], [1], [2]]),
        # small web images share tasks of about the target size
        ([500_000] * 6, 1, [[0, 1, 2], [3, 4, 5]]),
        # a small batch is cut finer so both workers get work twice over
        ([100_000] * 8, 2, [[0, 1], [2, 3], [4, 5], [6, 7]]),
        # unknown sizes (listed as 0 bytes) still spread over the workers
        ([0] * 4, 2, [[0], [1], [2], [3]]),
    ],
)
def test_plan_chunks(sizes: list[int], parallelism: int, expected: list[list[int]]) -> None:
    assert plan_chunks(files(*sizes), parallelism=parallelism) == expected


def test_chunks_cover_every_input_once_in_order_and_cap_the_image_count() -> None:
    inputs = files(*([1_000] * 1000))
    chunks = plan_chunks(inputs, parallelism=2, target_bytes=100_000_000)
    assert [index for chunk in chunks for index in chunk] == list(range(1000))
    assert max(len(chunk) for chunk in chunks) == CHUNK_MAX_IMAGES


def test_keys_carry_the_step_name_and_the_batch_token() -> None:
    graph = BatchGraph("tok123", PipelineConfig(), OutputRoot("/tmp/out"))
    hashed = graph.hash_task(4, [(0, "/in/a.jpg")])
    assert hashed.key == ("hash-tok123", 4)
    digests = [ImageWork(0, "/in/a.jpg", sha256="ab" * 32, size_bytes=10)]
    encoded = graph.process_tasks(4, digests, frozenset({0}))
    assert encoded.key == ("encode-tok123", 4)
    # the chain carries the digests as values: it may start on any free worker
    assert set(encoded.__dask_graph__()) == {
        ("validate-tok123", 4),
        ("resize-tok123", 4),
        ("encode-tok123", 4),
    }


def test_the_key_codec_reads_back_what_it_makes_and_nothing_else() -> None:
    batch_id = "20261201-101010-abc123"  # batch ids hold dashes themselves
    for step in STEPS:
        key = make_key(step, batch_id, 7)
        assert parse_key(key) == (step, batch_id, 7)
        assert belongs_to(key, batch_id)
        assert not belongs_to(key, batch_id + "0")
    foreign = [("thumbflow-driver-x", 1), ("sum-abc", 1), "hash-abc", ("hash-", 1), ("hash-a", "1")]
    for key in foreign:
        assert parse_key(key) is None


@pytest.mark.parametrize("module", sorted(STAGES.glob("*.py")), ids=lambda path: path.name)
def test_stages_import_no_dask_or_redis(module: Path) -> None:
    tree = ast.parse(module.read_text())
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        (node.module or "").split(".")[0] for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
    }  # fmt: skip
    assert not imported & {"dask", "distributed", "redis"}


def test_output_root_travels_as_its_url() -> None:
    import pickle

    root = pickle.loads(pickle.dumps(OutputRoot("memory://bucket/out")))
    assert root.url == "memory://bucket/out"
