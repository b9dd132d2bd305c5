"""The functions that run inside the graph, on the workers: each applies one stage to a chunk
of images.

A chunk is a list of ``ImageWork`` values that moves hash → validate → resize → encode on one
worker (linear chains stay where they started, so the decoded pixels never cross the network).
A stage that fails for one image records a ``Failure`` on it and moves on; later stages pass
failed images through untouched. Values are replaced, never mutated: a task that Dask re-runs
after a worker died must see the same inputs as the first time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from distributed.metrics import context_meter
from PIL import Image

from pipeline.config import Encoding, PipelineConfig
from pipeline.errors import Failure, ImageError, Step
from pipeline.results import ImageResult, OutputFile
from pipeline.stages.encode import encode
from pipeline.stages.hashing import Digest, read_as_hashed, sha256_of
from pipeline.stages.http_fetch import is_http
from pipeline.stages.metadata import NOTHING, Carried
from pipeline.stages.resize import cascade, decode_bytes
from pipeline.stages.sources import reading_with
from pipeline.stages.validate import ImageHeader, header_of_bytes, read_header
from pipeline.storage import (
    OutputRoot,
    Record,
    RecordedOutput,
    WriteAbandoned,
    image_folder,
    record_name,
)
from pipeline.worker import fetched
from pipeline.worker.cancellation import TaskCancelled, cancel_check, current_task_cancelled
from pipeline.worker.identity import current_writer
from pipeline.worker.image_warnings import collecting, merged


@dataclass(frozen=True)
class ImageWork:
    """One image on its way through the steps."""

    index: int
    source: str
    sha256: str = ""
    size_bytes: int = 0
    header: ImageHeader | None = None
    # Derivatives an earlier run made and left intact, by path: not encoded again.
    kept: Mapping[str, RecordedOutput] = field(default_factory=dict)
    renders: dict[str, Image.Image] | None = None
    carried: Carried = NOTHING  # what the derivatives carry besides pixels
    outputs: tuple[RecordedOutput, ...] | None = None  # set once every derivative is in place
    reused: bool = False  # every derivative was kept: nothing decoded
    failure: Failure | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()  # what Pillow warned about this image, for its manifest row

    @property
    def active(self) -> bool:
        """Still needs work from the next step."""
        return self.failure is None and self.outputs is None


@contextmanager
def _timed(timings: dict[str, float], step: str) -> Iterator[None]:
    """Time ``step`` for the manifest, and report it to Dask's Fine Performance Metrics as its
    own activity (outside a Dask task the meter is a no-op)."""
    start = time.perf_counter()
    try:
        with context_meter.meter(step):
            yield
    finally:
        timings[step] = timings.get(step, 0.0) + (time.perf_counter() - start) * 1000


Action = Callable[[dict[str, float]], "ImageWork"]


def _attempt(work: ImageWork, step: Step, action: Action, *, timed: bool = True) -> ImageWork:
    """Run one step for one image; whatever goes wrong becomes that image's failure, and what
    it warns about goes to its row instead of the worker's stderr (``image_warnings``).

    ``timed=False`` lets a step split its own time into finer parts (decode/resize, encode/write).
    """
    with collecting() as warned:
        done = _attempted(work, step, action, timed=timed)
    return replace(done, warnings=merged(work.warnings, warned)) if warned else done


def _attempted(work: ImageWork, step: Step, action: Action, *, timed: bool) -> ImageWork:
    timings = dict(work.timings_ms)
    try:
        if timed:
            with _timed(timings, step):
                done = action(timings)
        else:
            done = action(timings)
        return replace(done, timings_ms=timings)
    except ImageError as refused:
        return replace(work, failure=refused.failure, renders=None, timings_ms=timings)
    except TaskCancelled:
        raise
    except Exception as error:  # a bug or an unexpected library error: still only this image's
        failure = Failure(step, "internal_error", f"{work.source}: {type(error).__name__}: {error}")
        return replace(work, failure=failure, renders=None, timings_ms=timings)


def hash_chunk(
    items: Sequence[tuple[int, str]],
    config: PipelineConfig | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> list[ImageWork]:
    """The digest of each source. An ``http(s)://`` source is fetched here, once, and its bytes
    kept on this machine for the later steps (``pipeline.worker.fetched`` says why there)."""
    with reading_with(storage_options or {}):
        return _hash_chunk(items, config or PipelineConfig())


def _hash_chunk(items: Sequence[tuple[int, str]], config: PipelineConfig) -> list[ImageWork]:
    batch_id = fetched.current_batch_id()
    cancelled = cancel_check()

    def digest(work: ImageWork) -> Action:
        def action(_: dict[str, float]) -> ImageWork:
            if is_http(work.source):
                if cancelled():  # a chunk of stalled URLs would hold the worker for minutes
                    raise TaskCancelled
                found = fetched.fetch_and_hash(work.source, config, batch_id)
                return replace(work, sha256=found.sha256, size_bytes=found.size_bytes)
            try:
                found = sha256_of(work.source)
            except OSError as error:
                message = f"{work.source}: cannot read ({error.strerror or error})"
                raise ImageError(Failure("hash", "unreadable", message)) from None
            return replace(work, sha256=found.sha256, size_bytes=found.size_bytes)

        return action

    works = [ImageWork(index, source) for index, source in items]

    def hashed(work: ImageWork) -> ImageWork:
        return _attempt(work, "hash", digest(work))

    fetching = sum(is_http(work.source) for work in works)
    if fetching < 2 or config.fetch.concurrency < 2:
        try:
            return [hashed(work) for work in works]
        except TaskCancelled:
            return []
    # A URL mostly waits for the network: fetch a chunk's URLs at once (threads: the wait
    # releases the GIL), so a chunk of 20 URLs behind 50 ms of latency costs a round trip or
    # two, not twenty, while the worker's one task thread would otherwise sit idle.
    try:
        with ThreadPoolExecutor(min(fetching, config.fetch.concurrency)) as pool:
            return list(pool.map(hashed, works))
    except TaskCancelled:  # Dask throws a cancelled task's result away
        return []


def _planned_paths(sha256: str, config: PipelineConfig) -> list[str]:
    """Every derivative's path, in the order of the manifest (sizes, then formats)."""
    folder = image_folder(sha256)
    return [
        f"{folder}/{config.output_name(size, encoding)}"
        for size in config.sizes
        for encoding in config.encodings
    ]


def _trusted(record: Record | None, config: PipelineConfig) -> Iterator[RecordedOutput]:
    """The outputs of ``record`` this batch may take: none made while accepting truncated files
    if this batch refuses them (they may show only part of the file)."""
    if record is not None and (config.accept_truncated or not record.accept_truncated):
        yield from record.outputs


def _intact_outputs(
    sha256: str, config: PipelineConfig, root: OutputRoot
) -> dict[str, RecordedOutput]:
    """The derivatives this config wants that are already there, each checked against its
    record's size and SHA-256. This config's own record first (one read); if it does not
    account for everything, the other configs' records in the folder, for outputs they share."""
    wanted = set(_planned_paths(sha256, config))
    folder = image_folder(sha256)
    own = record_name(config.fingerprint)
    intact: dict[str, RecordedOutput] = {}

    def take(record: Record | None) -> None:
        for recorded in _trusted(record, config):
            path = recorded.output.path
            if path in wanted and path not in intact and root.holds(recorded):
                intact[path] = recorded

    take(root.read_record(f"{folder}/{own}"))
    if len(intact) < len(wanted):
        for name, record in root.records_in(folder).items():
            if name != own:
                take(record)
    return intact


def validate_chunk(
    hashed: Sequence[ImageWork], keep: frozenset[int], config: PipelineConfig, root: OutputRoot
) -> list[ImageWork]:
    """Header checks for the images the client kept after dedup (``keep`` holds their indices).

    An image whose derivatives are all intact from an earlier run is done here, unless the
    current limits refuse it: a rerun holds every image to them, reused or not."""

    def check(work: ImageWork) -> Action:
        def action(_: dict[str, float]) -> ImageWork:
            stored_at = _fetched_copy(work, config)
            header = read_header(work.source, work.size_bytes, config, stored_at=stored_at)
            kept = _intact_outputs(work.sha256, config, root)
            planned = _planned_paths(work.sha256, config)
            if all(path in kept for path in planned):
                outputs = tuple(kept[path] for path in planned)
                return replace(work, header=header, outputs=outputs, reused=True)
            return replace(work, header=header, kept=kept)

        return action

    with reading_with(root.storage_options):
        checked = [_attempt(work, "validate", check(work)) for work in hashed if work.index in keep]
    for work in checked:
        if is_http(work.source) and not work.active:  # refused or reused: nothing to decode
            fetched.release(work.sha256)
    return checked


def _fetched_copy(work: ImageWork, config: PipelineConfig) -> str | None:
    """Where a URL's bytes are on this machine (None for a file or fsspec source, read where
    it is)."""
    if not is_http(work.source):
        return None
    return fetched.spooled_copy(work.source, Digest(work.sha256, work.size_bytes), config)


def resize_chunk(
    validated: Sequence[ImageWork],
    config: PipelineConfig,
    storage_options: Mapping[str, Any] | None = None,
) -> list[ImageWork]:
    with reading_with(storage_options or {}):
        return _resize_chunk(validated, config)


def _resize_chunk(validated: Sequence[ImageWork], config: PipelineConfig) -> list[ImageWork]:
    def render(work: ImageWork) -> Action:
        def action(timings: dict[str, float]) -> ImageWork:
            if current_task_cancelled():
                raise TaskCancelled
            with _timed(timings, "decode"):
                stored_at = _fetched_copy(work, config)
                digest = Digest(work.sha256, work.size_bytes)
                data = read_as_hashed(work.source, digest, stored_at=stored_at)
                if stored_at is not None:
                    fetched.release(work.sha256)  # in memory now, and decoded once
                # Validate read the path earlier; the limits must hold for these very bytes.
                header = header_of_bytes(work.source, data, config)
                decoded = decode_bytes(work.source, data, header, config)
            with _timed(timings, "resize"):
                renders = cascade(decoded, config)
            return replace(work, header=header, renders=renders, carried=decoded.carried)

        return action

    try:
        return [
            _attempt(work, "resize", render(work), timed=False) if work.active else work
            for work in validated
        ]
    except TaskCancelled:
        return []


def _encode_and_write(
    work: ImageWork, config: PipelineConfig, root: OutputRoot, timings: dict[str, float]
) -> ImageWork:
    assert work.renders is not None
    folder = image_folder(work.sha256)
    outputs: list[RecordedOutput] = []
    # A source smaller than several boxes renders to the same image for each of them: encode it
    # once per format (+54 % images/s on 640x480 web images, byte-identical files).
    encoded: dict[tuple[int, Encoding], bytes] = {}
    for size in config.sizes:
        image = work.renders[size.name]
        for encoding in config.encodings:
            path = f"{folder}/{config.output_name(size, encoding)}"
            if path in work.kept:  # made by an earlier run and intact: the same bytes
                outputs.append(work.kept[path])
                continue
            try:
                with _timed(timings, "encode"):
                    if (id(image), encoding) not in encoded:
                        encoded[id(image), encoding] = encode(
                            image, encoding, config.background, work.carried
                        )
                    data = encoded[id(image), encoding]
            except (OSError, ValueError) as error:
                message = f"{work.source}: {encoding.format} encoder failed at {size.name}: {error}"
                raise ImageError(Failure("encode", "encode_error", message)) from None
            with _timed(timings, "write"):
                _write(root, path, data, work.source)
            output = OutputFile(path, size.name, encoding.format, *image.size, len(data))
            outputs.append(RecordedOutput.of(output, data))
    record = Record(config.accept_truncated, tuple(outputs))
    with _timed(timings, "write"):
        # Written last: its presence means every derivative it lists is complete.
        record_path = f"{folder}/{record_name(config.fingerprint)}"
        _write(root, record_path, _json_bytes(record.to_json()), work.source)
    return replace(work, renders=None, outputs=tuple(outputs))


def _write(root: OutputRoot, path: str, data: bytes, source: str) -> None:
    try:
        root.write_atomic(
            path, data, still_wanted=lambda: not current_task_cancelled(), owner=current_writer()
        )
    except WriteAbandoned:
        raise TaskCancelled from None
    except OSError as error:
        message = f"{source}: cannot write {path} under {root.url} ({error.strerror or error})"
        raise ImageError(Failure("encode", "write_error", message)) from None


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def encode_chunk(
    resized: Sequence[ImageWork], config: PipelineConfig, root: OutputRoot
) -> list[ImageResult]:
    """Encode and write every derivative; return only the small manifest rows to the client.

    If the batch is cancelled meanwhile, the task stops at the next image or file: what it
    returns then is discarded by Dask anyway."""
    results = []
    try:
        for work in resized:
            if current_task_cancelled():
                break
            if work.active:
                write = partial(_encode_and_write, work, config, root)
                work = _attempt(work, "encode", write, timed=False)
            results.append(_result_of(work))
    except TaskCancelled:
        pass
    return results


def _result_of(work: ImageWork) -> ImageResult:
    if work.failure is not None:
        return ImageResult(
            work.index,
            work.source,
            "failed",
            work.sha256 or None,
            failure=work.failure,
            timings_ms=work.timings_ms,
            warnings=work.warnings,
        )
    return ImageResult(
        work.index,
        work.source,
        "ok",
        work.sha256,
        outputs=tuple(recorded.output for recorded in work.outputs or ()),
        reused=work.reused,
        timings_ms=work.timings_ms,
        warnings=work.warnings,
    )
