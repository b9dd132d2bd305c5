"""``python -m benchmarks [compare|speedup|memory|scale|encoders|resampling|stores|ab|machine]``.

With no subcommand it runs ``compare``: thumbflow, a bare ProcessPool of thumbflow's stages,
the seed-style reference and the optional peers on the corpus photos and on 2,000 generated web
images, interleaved over rounds, then checks every output and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks import (
    ab,
    compare,
    encoders,
    machine,
    memory,
    resampling,
    scale,
    speedup,
    stores,
)
from benchmarks.implementations import ALL, POOLS, SEED, THUMBFLOW
from benchmarks.report import progress
from benchmarks.workloads import (
    BIGGEST_PHOTO,
    CORPUS,
    Workload,
    default_cache,
    photos,
    warm_image,
    web,
)

WORKLOADS = ("photos", "web")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the shared corpus folder")
    parser.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        help="where generated images are kept between runs (default: %(default)s)",
    )
    commands = parser.add_subparsers(dest="command")

    comparing = commands.add_parser("compare", help="all implementations, interleaved (default)")
    comparing.add_argument("--workload", choices=WORKLOADS, action="append")
    comparing.add_argument("--rounds", type=int, default=3)
    comparing.add_argument(
        "--impl",
        choices=ALL,
        action="append",
        help=f"repeatable; default all that can run ({SEED} always runs: it is the reference)",
    )
    comparing.add_argument("--web-count", type=int, default=2000)

    scaling = commands.add_parser("speedup", help="thumbflow with 1 vs 2 workers on the photos")
    scaling.add_argument("--rounds", type=int, default=3)

    peak = commands.add_parser("memory", help="peak worker RSS on the biggest photo")
    peak.add_argument("--rounds", type=int, default=3)
    peak.add_argument("--photo", type=Path, help=f"default: the corpus's {BIGGEST_PHOTO}")

    many = commands.add_parser("scale", help="N small images vs N/10: memory, latency, rate")
    many.add_argument("-n", "--count", type=int, default=100_000)

    knobs = commands.add_parser("encoders", help="encoder speed knobs: CPU vs bytes, photos")
    knobs.add_argument("--photos", type=int, help="only the first N photos (default: all 25)")

    filters = commands.add_parser("resampling", help="cheaper filters: CPU saved vs PSNR lost")
    filters.add_argument("--photos", type=int, help="only the first N photos (default: all 25)")

    remote = commands.add_parser("stores", help="S3 vs local disk (photos); URL lists vs local")
    remote.add_argument("--part", choices=("s3", "urls"), action="append", help="default: both")
    remote.add_argument("--rounds", type=int, default=3)
    remote.add_argument("--photos", type=int, help="only the first N photos (default: all 25)")
    remote.add_argument("--url-count", type=int, default=10_000)
    remote.add_argument("--latency-ms", type=float, default=50.0, help="per web server answer")

    other = commands.add_parser("ab", help="thumbflow here vs in another checkout, interleaved")
    other.add_argument(
        "other", type=Path, help="another checkout of the repo (e.g. a changed copy)"
    )
    other.add_argument("--workload", choices=WORKLOADS, default="photos")
    other.add_argument("--rounds", type=int, default=4)
    other.add_argument("--web-count", type=int, default=2000)

    commands.add_parser("machine", help="only print the machine description")
    # No subcommand means compare with its defaults.
    parser.set_defaults(workload=None, rounds=3, impl=None, web_count=2000)
    return parser


def _implementations(requested: list[str] | None) -> list[str]:
    names = list(requested or ALL)
    if SEED not in names:
        names.append(SEED)
    runnable = []
    for name in dict.fromkeys(names):
        reason = POOLS[name].unavailable() if name in POOLS else None
        if reason:
            print(f"> skipped {name}: {reason}\n")
        else:
            runnable.append(name)
    return runnable


def _compare(args: argparse.Namespace, scratch: Path, warm: str) -> None:
    names = _implementations(args.impl)
    for name in args.workload or WORKLOADS:
        workload = photos(args.corpus) if name == "photos" else web(args.cache, args.web_count)
        progress(f"compare on {workload.description}: {', '.join(names)}, {args.rounds} rounds")
        result = compare.run(workload, names, args.rounds, scratch, warm)
        print(f"## {workload.name}: {workload.description}, {args.rounds} rounds interleaved\n")
        print(compare.results_table(result) + "\n")
        if THUMBFLOW in names:
            print(compare.targets_table(result) + "\n")


URL_IMAGE_SIZE = (320, 240)  # small images: the fetch, not the pixels, is what is measured


def _stores(args: argparse.Namespace, scratch: Path, warm: str) -> None:
    parts = args.part or ["s3", "urls"]
    images = web(args.cache, args.url_count, URL_IMAGE_SIZE) if "urls" in parts else None
    connection, client = stores.start_client(warm)
    try:
        if "s3" in parts:
            chosen = photos(args.corpus)
            chosen = Workload(chosen.name, chosen.sources[: args.photos], chosen.description)
            print(f"## object store vs local disk: {len(chosen.sources)} photos, in and out\n")
            print(f"{args.rounds} rounds interleaved, one 2-worker LocalCluster.\n")
            print(stores.object_store(client, chosen, args.rounds, warm, scratch) + "\n")
        if images is not None:
            latency = args.latency_ms / 1000
            print(f"## URL list vs local disk: {images.description}\n")
            print(
                f"Served by a threaded HTTP server (a child process) answering after "
                f"{args.latency_ms:.0f} ms; {args.rounds} rounds interleaved.\n"
            )
            print(stores.url_list(client, images, args.rounds, latency, scratch) + "\n")
    finally:
        connection.close()


def main() -> None:
    args = _parser().parse_args()
    command = args.command or "compare"
    print("# thumbflow benchmarks\n")
    print(machine.describe() + "\n")
    print(
        "Wall times run from handing the batch over to the last file on disk; starting the "
        "executor (LocalCluster or process pool) and a warm-up image on each of its workers "
        "are excluded for every implementation.\n"
    )
    if command == "machine":
        return
    started = time.monotonic()
    args.cache.mkdir(parents=True, exist_ok=True)
    warm = warm_image(args.cache)
    with tempfile.TemporaryDirectory(prefix="thumbflow-bench-") as scratch:
        if command == "compare":
            _compare(args, Path(scratch), warm)
        elif command == "speedup":
            print("## thumbflow, 1 vs 2 workers, photos\n")
            print(speedup.run(photos(args.corpus), args.rounds, Path(scratch), warm) + "\n")
        elif command == "memory":
            photo = str(args.photo or args.corpus / "photos" / BIGGEST_PHOTO)
            print(f"## peak memory on {Path(photo).name}\n")
            print(memory.run(photo, args.rounds, warm) + "\n")
        elif command == "ab":
            chosen = (
                photos(args.corpus)
                if args.workload == "photos"
                else web(args.cache, args.web_count)
            )
            print(f"## thumbflow A/B on {chosen.description}, {args.rounds} rounds alternating\n")
            print(ab.run(chosen, args.other, args.rounds, Path(scratch), warm) + "\n")
        elif command == "encoders":
            chosen = photos(args.corpus).sources[: args.photos]
            print(f"## encoder settings on {len(chosen)} photos' derivatives (default sizes)\n")
            print(encoders.run(chosen) + "\n")
        elif command == "resampling":
            chosen = photos(args.corpus).sources[: args.photos]
            print(f"## resampling filters on {len(chosen)} photos (default sizes)\n")
            print(resampling.run(chosen) + "\n")
        elif command == "stores":
            _stores(args, Path(scratch), warm)
        elif command == "scale":
            print(f"## scale: {args.count:,} small images vs a tenth of them\n")
            print(scale.run(args.cache, args.count, warm) + "\n")
    print(f"_{command} took {time.monotonic() - started:.0f} s; " + machine.load() + "_")


if __name__ == "__main__":
    main()
