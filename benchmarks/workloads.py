"""The inputs: the shared corpus's photos, and generated images cached outside the repo.

Generated sets are made once with ``pipeline.samples.photo_like`` (deterministic per index, so a
cache can be trusted) and written by temp-file + rename with a marker file last, so an
interrupted generation is finished next time rather than trusted half-done.
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks.report import progress
from pipeline.samples import photo_like

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
BIGGEST_PHOTO = "canon_eos_5d_mark_iii.jpg"
# Scale images are cached in folders of this many, so a smaller N reuses a bigger N's files and
# thumbflow can be given folders (as a user would) rather than a 100k-item list.
SCALE_FOLDER_SIZE = 1000
WEB_SIZE = (640, 480)
JPEG_QUALITY = 85  # what a web upload typically carries


@dataclass(frozen=True)
class Workload:
    name: str
    sources: list[str]
    description: str


def default_cache() -> Path:
    return (
        Path(os.environ.get("THUMBFLOW_BENCH_CACHE") or tempfile.gettempdir()) / "thumbflow-bench"
    )


def photos(corpus: Path) -> Workload:
    folder = corpus / "photos"
    if not folder.is_dir():
        raise SystemExit(f"the photo corpus is not at {folder}; pass --corpus DIR")
    sources = sorted(str(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return Workload("photos", sources, f"{len(sources)} camera JPEGs from {folder}")


def _write_jpeg(path: Path, width: int, height: int, seed: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    photo_like(width, height, seed).save(temporary, "JPEG", quality=JPEG_QUALITY)
    os.replace(temporary, path)


def _make_web(folder: str, part: tuple[Sequence[int], tuple[int, int]]) -> None:
    indices, size = part
    for index in indices:
        _write_jpeg(Path(folder) / f"web_{index:05d}.jpg", *size, seed=index)


def _scale_size(index: int) -> tuple[int, int]:
    rng = random.Random(index)
    return rng.randint(64, 640), rng.randint(64, 640)


def _make_scale_folder(folder: str, first: int) -> None:
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for index in range(first, first + SCALE_FOLDER_SIZE):
        _write_jpeg(path / f"img_{index:06d}.jpg", *_scale_size(index), seed=1_000_000 + index)
    (path / ".complete").touch()


def _in_parallel(
    function: Callable[[str, Any], None], folders: list[str], arguments: list[Any]
) -> None:
    """Generation is plain CPU work: both cores, in spawned processes like everything here."""
    with ProcessPoolExecutor(os.cpu_count() or 1, mp_context=get_context("spawn")) as pool:
        for done, _ in enumerate(pool.map(function, folders, arguments), 1):
            if done % 10 == 0 or done == len(folders):
                progress(f"  generated {done}/{len(folders)} parts")


def web(cache: Path, count: int, size: tuple[int, int] = WEB_SIZE) -> Workload:
    folder = cache / f"web-{count}-{size[0]}x{size[1]}"
    marker = folder / ".complete"
    if not marker.exists():
        progress(f"generating {count} web images into {folder} (once; cached)")
        folder.mkdir(parents=True, exist_ok=True)
        parts = [list(range(start, min(count, start + 100))) for start in range(0, count, 100)]
        _in_parallel(_make_web, [str(folder)] * len(parts), [(part, size) for part in parts])
        marker.touch()
    sources = [str(folder / f"web_{index:05d}.jpg") for index in range(count)]
    shape = f"{size[0]}x{size[1]}"
    return Workload("web", sources, f"{count} generated {shape} JPEGs q{JPEG_QUALITY} in {folder}")


def scale_folders(cache: Path, count: int) -> list[Path]:
    """Folders holding the first ``count`` scale images (rounded up to whole folders)."""
    root = cache / "scale"
    folders = [root / f"{n:03d}" for n in range(-(-count // SCALE_FOLDER_SIZE))]
    todo = [folder for folder in folders if not (folder / ".complete").exists()]
    if todo:
        progress(f"generating {len(todo) * SCALE_FOLDER_SIZE} small images into {root} (cached)")
        firsts = [int(folder.name) * SCALE_FOLDER_SIZE for folder in todo]
        _in_parallel(_make_scale_folder, [str(folder) for folder in todo], firsts)
    return folders


def warm_image(cache: Path) -> str:
    """A small photo every worker processes before the clock starts."""
    path = cache / "warm-1024x768.jpg"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        _write_jpeg(path, 1024, 768, seed=1)
    return str(path)


def read_through(sources: Sequence[str]) -> None:
    """Read every input once so the first implementation timed does not pay for a cold cache."""
    for source in sources:
        with open(source, "rb") as stream:
            while stream.read(1 << 20):
                pass
