"""The one place that builds Dask graphs: chunking and the per-chunk task chain.

Runs in the driver. Per chunk of images the graph is ``hash → validate → resize → encode``, the
functions of ``pipeline.worker.tasks``, under keys made by ``pipeline.keys``.

Hashing is its own layer: the client reads each chunk's digests (a few bytes per image) and
decides which images are new before the rest of the chain is submitted, so byte-identical inputs
are decoded once. Those digests, not the hash task, go into the validate task: the scheduler then
starts each chain on whichever worker frees up first (tying it to the worker that hashed the
file left one worker idle while the other worked through its queue; photos 3.84 → 3.50 s). The
chain itself stays on one worker, and no image bytes pass through the client or scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from dask.delayed import delayed

from pipeline.config import PipelineConfig
from pipeline.errors import Step
from pipeline.inputs import InputFile
from pipeline.keys import make_key
from pipeline.storage import OutputRoot
from pipeline.worker.tasks import (
    ImageWork,
    encode_chunk,
    hash_chunk,
    resize_chunk,
    validate_chunk,
)

# A Dask task costs 2-5 ms of scheduler and worker overhead on two cores (docs/design.md), so small
# images share a task until it holds about this much compressed input (~0.2-0.5 s of work); a
# camera photo is bigger than this on its own and gets a task to itself.
CHUNK_TARGET_BYTES = 1_500_000
CHUNK_MAX_IMAGES = 64
# Even a tiny image costs a few milliseconds (open, encode six files, write them), and a URL
# whose size is unknown (listed as 0) should still spread across workers: count at least this.
MIN_IMAGE_COST = 64_000


def plan_chunks(
    inputs: Sequence[InputFile],
    *,
    parallelism: int,
    target_bytes: int = CHUNK_TARGET_BYTES,
    max_images: int = CHUNK_MAX_IMAGES,
) -> list[list[int]]:
    """Group input indices into chunks of about ``target_bytes``, in input order.

    A small batch is cut finer so that every one of ``parallelism`` threads gets work at least
    twice over: 20 thumbnails should not all queue on one worker.
    """
    costs = [max(item.size_bytes, MIN_IMAGE_COST) for item in inputs]
    target = max(1, min(target_bytes, sum(costs) // max(1, 2 * parallelism)))
    chunks: list[list[int]] = []
    current: list[int] = []
    current_bytes = 0
    for index, cost in enumerate(costs):
        if current and (current_bytes + cost > target or len(current) >= max_images):
            chunks.append(current)
            current, current_bytes = [], 0
        current.append(index)
        current_bytes += cost
    if current:
        chunks.append(current)
    return chunks


class BatchGraph:
    """Builds the delayed tasks of one batch; every key carries the batch's id."""

    def __init__(self, batch_id: str, config: PipelineConfig, root: OutputRoot) -> None:
        self.batch_id = batch_id
        self.config = config
        self.root = root

    def key(self, step: Step, chunk: int) -> tuple[str, int]:
        return make_key(step, self.batch_id, chunk)

    # Values that hold no Dask objects are bound into the function with partial(): delayed()
    # would otherwise walk every argument, the config's nested dataclasses included, for every
    # task (17 % of the client's CPU in a profile of the photo batch).

    def hash_task(self, chunk: int, items: Sequence[tuple[int, str]]) -> Any:
        # the fetch settings (URLs) and storage options (object stores) travel in the task:
        # a worker has only what the task brings
        work = partial(
            hash_chunk, list(items), config=self.config, storage_options=self.root.storage_options
        )
        return delayed(work, pure=False)(dask_key_name=self.key("hash", chunk))

    def process_tasks(self, chunk: int, hashed: Sequence[ImageWork], keep: frozenset[int]) -> Any:
        """validate → resize → encode for the kept images of one chunk; ``hashed`` is the
        chunk's hash results. Returns the encode task, the only one the client holds."""
        validate = partial(
            validate_chunk, list(hashed), keep=keep, config=self.config, root=self.root
        )
        resize = partial(
            resize_chunk, config=self.config, storage_options=self.root.storage_options
        )
        encode = partial(encode_chunk, config=self.config, root=self.root)
        validated = delayed(validate, pure=False)(dask_key_name=self.key("validate", chunk))
        resized = delayed(resize, pure=False)(validated, dask_key_name=self.key("resize", chunk))
        return delayed(encode, pure=False)(resized, dask_key_name=self.key("encode", chunk))
