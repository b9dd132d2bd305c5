"""``thumbflow``: the command line. Thin by design: parse → config → API → print.

Exit codes: 0 every input was handled (some may have failed, see the summary), 1 some images
failed and ``--strict`` was given, 2 usage or configuration error, 3 infrastructure error
(inputs missing, output not writable, cluster unreachable), 130 interrupted (batch cancelled).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from pipeline import api
from pipeline._version import __version__
from pipeline.batch import BatchReport, BatchStatus
from pipeline.config import DEFAULT_ENCODINGS, DEFAULT_SIZES, Encoding, PipelineConfig, Size
from pipeline.errors import ConfigError, ThumbflowError

EXIT_OK, EXIT_FAILED_IMAGES, EXIT_USAGE, EXIT_INFRASTRUCTURE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    sizes = ", ".join(f"{s.name}={s.width}x{s.height}" for s in DEFAULT_SIZES)
    parser.add_argument(
        "--size",
        action="append",
        metavar="NAME=WxH[:MODE]",
        dest="sizes",
        help=f"a named box, repeatable; MODE is fit (default), cover or pad (default: {sizes})",
    )
    parser.add_argument(
        "--format",
        action="append",
        metavar="FORMAT[:QUALITY]",
        dest="formats",
        help="jpeg, webp or avif with optional quality, repeatable (default: jpeg:85 webp:80)",
    )
    parser.add_argument("--webp-method", type=int, default=4, help="0 fast .. 6 small (default 4)")
    parser.add_argument("--avif-speed", type=int, default=8, help="0 slow .. 10 fast (default 8)")
    parser.add_argument("--max-pixels", type=float, help="refuse images above this many megapixels")
    parser.add_argument("--workers", type=int, help="local worker processes (default: cores)")
    parser.add_argument("--scheduler", help="a running Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 if any image failed"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="thumbflow",
        description="Turn batches of images into web derivatives on a Dask cluster.",
    )
    parser.add_argument("--version", action="version", version=f"thumbflow {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="process images into derivatives")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, globs or URLs")
    run.add_argument("-o", "--output", required=True, help="output folder or URL")
    _add_batch_options(run)

    demo = commands.add_parser("demo", help="make sample photos (unless --images) and process them")
    demo.add_argument("-o", "--output", default="thumbflow-demo", help="default: ./thumbflow-demo")
    demo.add_argument("--images", help="process this folder instead of generated samples")
    demo.add_argument("--count", type=int, default=12, help="how many sample photos to make")
    _add_batch_options(demo)
    return parser


def config_from(args: argparse.Namespace) -> PipelineConfig:
    sizes = tuple(Size.parse(text) for text in args.sizes) if args.sizes else DEFAULT_SIZES
    encodings = (
        tuple(Encoding.parse(text) for text in args.formats) if args.formats else DEFAULT_ENCODINGS
    )
    encodings = tuple(
        Encoding(
            format=e.format,
            quality=e.quality,
            webp_method=args.webp_method,
            avif_speed=args.avif_speed,
        )
        for e in encodings
    )
    if args.max_pixels:
        max_pixels = int(args.max_pixels * 1_000_000)
        return PipelineConfig(sizes=sizes, encodings=encodings, max_pixels=max_pixels)
    return PipelineConfig(sizes=sizes, encodings=encodings)


def _follow(handle: api.BatchHandle, show_progress: bool) -> BatchReport:
    """Wait for the batch with a progress bar; Ctrl-C cancels it cleanly."""
    status = handle.status()
    with tqdm(
        total=status.total,
        unit="img",
        disable=not show_progress,
        dynamic_ncols=True,
        desc=f"batch {handle.batch_id}",
    ) as bar:
        while True:
            status = handle.status()
            bar.n = status.total - status.pending
            bar.set_postfix(ok=status.ok, dup=status.duplicate, failed=status.failed, refresh=False)
            bar.refresh()
            if status.finished:
                break
            time.sleep(0.2)
    return handle.result()


def _summary(report: BatchReport, workers_note: str) -> str:
    status: BatchStatus = report.status
    lines = [
        f"thumbflow: {status.total} inputs in {status.elapsed_s:.1f} s "
        f"({status.images_per_s:.1f} images/s){workers_note}",
        f"  ok {status.ok} · duplicate {status.duplicate} · failed {status.failed}"
        f" · cancelled {status.cancelled}",
    ]
    if report.failures_by_code:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(report.failures_by_code.items()))
        lines.append(f"  failures by code: {codes}")
    lines.append(f"  derivatives: {report.output}")
    lines.append(f"  manifest:    {report.manifest}")
    return "\n".join(lines)


def _run_batch(args: argparse.Namespace, inputs: Sequence[str]) -> int:
    config = config_from(args)
    handle = api.submit(
        inputs, args.output, config=config, scheduler=args.scheduler, workers=args.workers
    )
    print(f"thumbflow: batch {handle.batch_id}, dashboard {handle.dashboard_link}", file=sys.stderr)
    try:
        report = _follow(handle, show_progress=not args.no_progress)
    except KeyboardInterrupt:
        print("\nthumbflow: interrupted, cancelling the batch…", file=sys.stderr)
        final = handle.cancel()
        print(
            f"thumbflow: batch {handle.batch_id} {final.state}: {final.ok} ok, "
            f"{final.cancelled} cancelled; manifest {handle.manifest}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(_summary(report, f" on {args.workers} workers" if args.workers else ""))
    if args.strict and report.status.failed:
        return EXIT_FAILED_IMAGES
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from pipeline.samples import write_samples

    if args.images:
        inputs = [args.images]
    else:
        samples = write_samples(Path(args.output) / "samples", count=args.count)
        print(
            f"thumbflow: made {len(samples.images)} sample images, a duplicate and "
            f"{len(samples.broken)} broken files in {samples.folder}",
            file=sys.stderr,
        )
        inputs = [str(samples.folder)]
    args.output = str(Path(args.output) / "derivatives")
    return _run_batch(args, inputs)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * args.verbose, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "run":
            return _run_batch(args, args.inputs)
        elif args.command == "demo":
            return _demo(args)
        else:
            raise AssertionError(f"unknown command {args.command!r}")
    except ConfigError as error:
        print(f"thumbflow: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ThumbflowError as error:
        print(f"thumbflow: {error}", file=sys.stderr)
        return EXIT_INFRASTRUCTURE


if __name__ == "__main__":
    sys.exit(main())
