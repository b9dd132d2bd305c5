"""``thumbflow``: the command line. Thin by design: parse → config → API → print. Runs in the
user's process (the driver of a batch is a thread of it).

Exit codes: 0 every input was handled (some may have failed, see the summary), 1 some images
failed and ``--strict`` was given, 2 usage or configuration error, 3 infrastructure error
(inputs missing, output not writable, cluster or progress store unreachable, unknown batch),
5 ``watch``/``cancel``: the batch's driver is gone (no heartbeat for a few seconds), 70 internal
error (a bug in thumbflow), 75 the scheduler went away mid-batch (a rerun resumes), 130
interrupted (the batch was cancelled), 141 stdout's reader went away (``| head -1``).

``--json`` output has one shape, defined in ``cli_json``; progress on stderr is ``cli_progress``;
option values are checked while parsing by ``cli_args``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from distributed import Security
from distributed.comm.core import CommClosedError

from pipeline import api, cli_json
from pipeline._version import __version__
from pipeline.cli_args import (
    int_between,
    output_location,
    parsed_by,
    positive_float,
    positive_int,
    redis_url,
)
from pipeline.cli_progress import PROGRESS_MODES, ProgressMode, progress_view, rate_text
from pipeline.config import (
    DEFAULT_ENCODINGS,
    DEFAULT_SIZES,
    EXTRA_FORMATS,
    Encoding,
    PipelineConfig,
    Size,
)
from pipeline.dashboard import batches_page_link
from pipeline.dask_logs import show_dask_logs
from pipeline.errors import ClusterLost, ConfigError, ProgressStoreWarning, ThumbflowError
from pipeline.interrupts import Interrupted, stop_signals_ignored, stop_signals_raise
from pipeline.progress.publisher import DEFAULT_TTL_S
from pipeline.progress.store import DRIVER_GONE_AFTER_S, RedisStore, StoredBatch
from pipeline.redaction import redact, redact_location
from pipeline.results import BatchReport, BatchStatus

EXIT_OK = 0
EXIT_FAILED_IMAGES = 1  # --strict, and some image is neither ok nor a duplicate
EXIT_USAGE = 2
EXIT_INFRASTRUCTURE = 3
EXIT_CANCELLED = 4  # the batch was cancelled (from another process, or by `thumbflow cancel`)
EXIT_DRIVER_GONE = 5  # watch/cancel: the process driving the batch stopped reporting
EXIT_INTERNAL = 70  # sysexits' EX_SOFTWARE: a bug in thumbflow, not a problem with the setup
EXIT_CLUSTER_LOST = 75  # sysexits' EX_TEMPFAIL: the scheduler went away mid-batch; rerun resumes
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C): the batch was cancelled and its manifest finished
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (`| head -1`): 128 + SIGPIPE, as for a C tool
EXIT_TERMINATED = 143  # SIGTERM: the same

# How long `thumbflow cancel` waits for a live driver to settle the batch (running tasks stop
# before their next image or file, so this is generous).
CANCEL_WAIT_S = 60.0


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line: the full synopsis of ``run`` is 15 lines,
    which buries the one that says what was wrong (``--help`` still prints it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_redis_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--redis",
        metavar="URL",
        type=redis_url,
        default=os.environ.get(api.REDIS_URL_VARIABLE),
        help=f"progress store, redis:// or rediss:// (default: ${api.REDIS_URL_VARIABLE})",
    )


def _add_progress_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        choices=PROGRESS_MODES,
        help="bar (redrawn), plain (a line every few seconds) or none "
        "(default: bar on a terminal, plain otherwise)",
    )
    parser.add_argument(
        "--no-progress", action="store_const", const="none", dest="progress", help="--progress none"
    )


def _add_batch_options(parser: argparse.ArgumentParser) -> None:
    sizes = " ".join(f"{s.name}={s.width}x{s.height}" for s in DEFAULT_SIZES)
    parser.add_argument(
        "--size",
        action="append",
        type=parsed_by(Size.parse),
        metavar="NAME=WxH[:MODE]",
        dest="sizes",
        help=f"a named box, repeatable; MODE is fit (default), cover or pad (default: {sizes})",
    )
    parser.add_argument(
        "--format",
        action="append",
        type=parsed_by(Encoding.parse),
        metavar="FORMAT[:QUALITY]",
        dest="formats",
        help="jpeg, webp or avif with optional quality 1..100, repeatable "
        "(default: jpeg:85 webp:80)",
    )
    parser.add_argument(
        "--webp-method",
        type=int_between(0, 6),
        default=4,
        metavar="N",
        help="0 fast .. 6 small (default 4)",
    )
    parser.add_argument(
        "--avif-speed",
        type=int_between(0, 10),
        default=8,
        metavar="N",
        help="0 slow .. 10 fast (default 8)",
    )
    parser.add_argument(
        "--jpeg-progressive", action="store_true", help="progressive JPEG (a few %% smaller)"
    )
    parser.add_argument(
        "--jpeg-optimize", action="store_true", help="optimised Huffman tables (a few %% smaller)"
    )
    limits = parser.add_argument_group("limits and fidelity (checked from the header)")
    limits.add_argument(
        "--max-pixels",
        type=positive_float,
        metavar="MP",
        help="refuse headers over this (default 300)",
    )
    limits.add_argument(
        "--max-decoded-pixels",
        type=positive_float,
        metavar="MP",
        help="refuse what would decode to more (default 100)",
    )
    limits.add_argument(
        "--max-frames",
        type=positive_int,
        metavar="N",
        help="refuse longer animations (default 1000)",
    )
    limits.add_argument(
        "--max-file-mb", type=positive_float, metavar="MB", help="refuse larger files (default 256)"
    )
    limits.add_argument(
        "--accept-truncated", action="store_true", help="make derivatives of files that end early"
    )
    limits.add_argument(
        "--allow-format",
        dest="allow_formats",
        action="append",
        default=[],
        metavar="NAME",
        help=f"also read this format (repeatable): {', '.join(EXTRA_FORMATS)}",
    )
    limits.add_argument(
        "--keep-metadata", action="store_true", help="copy EXIF (upright) and XMP to the outputs"
    )
    limits.add_argument(
        "--colour",
        choices=("srgb", "keep"),
        default="srgb",
        help="convert ICC profiles to sRGB (default) or keep them",
    )
    urls = parser.add_argument_group(
        "URL lists (an input named NAME.txt, .csv, .tsv or .parquet: one http(s) URL a row)"
    )
    urls.add_argument(
        "--url-column", default="url", metavar="NAME", help="the URL's column (default: url)"
    )
    urls.add_argument(
        "--keep-column",
        dest="keep_columns",
        action="append",
        default=[],
        metavar="NAME",
        help="carry this column to the manifest row (repeatable)",
    )
    urls.add_argument(
        "--fetch-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="connecting, and each wait for more bytes (default 30)",
    )
    urls.add_argument(
        "--fetch-retries",
        type=int_between(0, 20),
        metavar="N",
        help="tries again after a reset, 429 or 5xx (default 3)",
    )
    parser.add_argument(
        "--workers", type=positive_int, metavar="N", help="local worker processes (default: cores)"
    )
    parser.add_argument("--scheduler", help="a running Dask scheduler, e.g. tcp://host:8786")
    tls = parser.add_argument_group("TLS, for a tls:// scheduler")
    tls.add_argument("--tls-ca-file", help="CA certificate that signed the cluster's")
    tls.add_argument("--tls-cert", help="this client's certificate")
    tls.add_argument("--tls-key", help="this client's private key")
    parser.add_argument(
        "--detached",
        action="store_true",
        help="run the batch's driver on the cluster and return at once (needs --scheduler and "
        "--redis); follow it with `thumbflow watch ID`",
    )
    _add_redis_option(parser)
    parser.add_argument(
        "--require-redis", action="store_true", help="fail if the progress store is unreachable"
    )
    parser.add_argument(
        "--redis-ttl",
        type=positive_float,
        default=DEFAULT_TTL_S,
        metavar="SECONDS",
        help="keep a finished batch's progress this long (default: 7 days)",
    )
    parser.add_argument(
        "--report", metavar="FILE.html", help="save a Dask performance report of the batch"
    )
    _add_progress_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON object on stdout (progress stays on stderr)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 if any image failed or was cancelled",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="thumbflow",
        description="Turn batches of images into web derivatives on a Dask cluster.",
    )
    parser.add_argument("--version", action="version", version=f"thumbflow {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="process images into derivatives")
    run.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, globs or URLs")
    run.add_argument(
        "-o", "--output", type=output_location, required=True, help="output folder or URL"
    )
    _add_batch_options(run)

    demo = commands.add_parser("demo", help="make sample photos (unless --images) and process them")
    demo.add_argument(
        "-o",
        "--output",
        type=output_location,
        default="thumbflow-demo",
        help="default: ./thumbflow-demo",
    )
    demo.add_argument("--images", help="process this folder instead of generated samples")
    demo.add_argument(
        "--count", type=positive_int, default=12, metavar="N", help="how many sample photos to make"
    )
    _add_batch_options(demo)

    status = commands.add_parser("status", help="a batch's counts, from the progress store")
    status.add_argument("batch_id")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _add_redis_option(status)

    watch = commands.add_parser("watch", help="follow a running batch with a progress bar")
    watch.add_argument("batch_id")
    _add_progress_options(watch)
    _add_redis_option(watch)

    listing = commands.add_parser("list", help="recent batches in the progress store")
    listing.add_argument("--limit", type=positive_int, default=20, metavar="N")
    listing.add_argument("--json", action="store_true", help="a JSON array of batches")
    _add_redis_option(listing)

    cancel = commands.add_parser("cancel", help="cancel a batch running anywhere")
    cancel.add_argument("batch_id")
    cancel.add_argument("--no-wait", action="store_true", help="do not wait for it to settle")
    _add_redis_option(cancel)
    return parser


def config_from(args: argparse.Namespace) -> PipelineConfig:
    """The batch's config from parsed options (``--size``/``--format`` arrive parsed, and every
    number checked: see ``cli_args``)."""
    sizes = tuple(args.sizes) if args.sizes else DEFAULT_SIZES
    encodings = tuple(args.formats) if args.formats else DEFAULT_ENCODINGS
    encodings = tuple(
        Encoding(
            format=e.format,
            quality=e.quality,
            webp_method=args.webp_method,
            avif_speed=args.avif_speed,
            jpeg_progressive=args.jpeg_progressive,
            jpeg_optimize=args.jpeg_optimize,
        )
        for e in encodings
    )
    config = PipelineConfig(
        sizes=sizes,
        encodings=encodings,
        colour=args.colour,
        keep_metadata=args.keep_metadata,
        accept_truncated=args.accept_truncated,
        allow_formats=tuple(args.allow_formats),
    )
    # None is "not given" (the config's default). A value given was checked to be positive
    # while parsing; one too small for a whole pixel or byte still counts as 1, never as 0.
    if args.max_pixels is not None:
        config = replace(config, max_pixels=max(1, int(args.max_pixels * 1_000_000)))
    if args.max_decoded_pixels is not None:
        pixels = max(1, int(args.max_decoded_pixels * 1_000_000))
        config = replace(config, max_decoded_pixels=pixels)
    if args.max_frames is not None:
        config = replace(config, max_frames=args.max_frames)
    if args.max_file_mb is not None:
        config = replace(config, max_file_bytes=max(1, int(args.max_file_mb * 1024 * 1024)))
    if args.fetch_timeout is not None:
        config = replace(config, fetch=replace(config.fetch, timeout_s=args.fetch_timeout))
    if args.fetch_retries is not None:
        config = replace(config, fetch=replace(config.fetch, retries=args.fetch_retries))
    return config


def _status_line(status: BatchStatus) -> str:
    return (
        f"{status.batch_id} {status.state}: ok {status.ok} · duplicate {status.duplicate} · "
        f"failed {status.failed} · cancelled {status.cancelled} · pending {status.pending} "
        f"of {status.total}"
    )


def _follow(handle: api.BatchHandle, mode: ProgressMode | None) -> BatchReport:
    """Wait for the batch, showing its progress on stderr."""
    view = progress_view(mode, handle.batch_id, handle.status().total)
    try:
        while True:
            status = handle.status()
            view.show(status)
            if status.finished:
                break
            time.sleep(0.2)
    finally:
        view.close()
    return handle.result()


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def _summary(report: BatchReport) -> str:
    status: BatchStatus = report.status
    rate = rate_text(status)  # none when nothing was processed: a rerun that reused everything
    reused = f" ({status.reused} reused)" if status.reused else ""
    lines = [
        f"thumbflow: {status.total} inputs in {status.elapsed_s:.1f} s"
        f"{f' ({rate})' if rate else ''}, batch {status.batch_id} {status.state}",
        f"  ok {status.ok}{reused} · duplicate {status.duplicate} · failed {status.failed}"
        f" · cancelled {status.cancelled}",
    ]
    if report.failures_by_code:
        codes = ", ".join(f"{code} {n}" for code, n in sorted(report.failures_by_code.items()))
        lines.append(f"  failures by code: {codes}")
    if copies := report.duplicates_of_failed:
        lines.append(
            f"  failed counts {copies} {_plural(copies, 'copy', 'copies')} of a failed input"
        )
    if warned := report.images_with_warnings:
        lines.append(
            f"  {warned} {_plural(warned, 'image', 'images')} with warnings "
            "(`warnings` in the manifest)"
        )
    lines.append(f"  derivatives: {redact_location(report.output)}")
    lines.append(f"  manifest:    {redact_location(report.manifest)}")
    return "\n".join(lines)


def _hints(report: BatchReport, args: argparse.Namespace) -> list[str]:
    """What the user could do about the failures, in the CLI's words (the failure messages
    come from the workers, which do not know whether a CLI or a program asked)."""
    hints = []
    if report.failures_by_code.get("truncated") and not args.accept_truncated:
        hints.append("  truncated: --accept-truncated makes derivatives of the part that is there")
    return hints


def _security(args: argparse.Namespace) -> Security | None:
    files = (args.tls_ca_file, args.tls_cert, args.tls_key)
    if not any(files):
        return None
    if not all(files):
        raise ConfigError("TLS needs all three of --tls-ca-file, --tls-cert and --tls-key")
    return Security(
        tls_ca_file=args.tls_ca_file,
        tls_client_cert=args.tls_cert,
        tls_client_key=args.tls_key,
        require_encryption=True,
    )


def _run_batch(args: argparse.Namespace, inputs: Sequence[str]) -> int:
    handle: api.BatchHandle | None = None
    try:
        with stop_signals_raise():
            _check_options_together(args)
            handle = _submit(args, inputs)
            if args.detached:
                if args.json:
                    print(cli_json.dumps(cli_json.from_store(_store(args).batch(handle.batch_id))))
                else:
                    print(handle.batch_id)
                print(f"thumbflow: running on the cluster; `thumbflow watch {handle.batch_id}` "
                      "follows it, `thumbflow cancel` stops it", file=sys.stderr)  # fmt: skip
                return EXIT_OK
            report = _follow(handle, args.progress)
    except Interrupted as stop:
        return _cancel_after(stop, handle)
    if args.json:
        print(cli_json.dumps(cli_json.from_report(report)))
    else:
        print("\n".join([_summary(report), *_hints(report, args)]))
    return _exit_code(report.status, strict=args.strict)


def _check_options_together(args: argparse.Namespace) -> None:
    """Options that need another one, refused before any cluster starts."""
    if args.detached and not args.scheduler:
        raise ConfigError(
            "--detached needs --scheduler: the batch's driver runs on a cluster that outlives "
            "this command"
        )
    for option, given in (("--detached", args.detached), ("--require-redis", args.require_redis)):
        if given and not args.redis:
            raise ConfigError(f"{option} needs --redis URL (or ${api.REDIS_URL_VARIABLE})")


def _submit(args: argparse.Namespace, inputs: Sequence[str]) -> api.BatchHandle:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProgressStoreWarning)
        handle = api.submit(
            inputs,
            args.output,
            config=config_from(args),
            scheduler=args.scheduler,
            workers=args.workers,
            redis_url=args.redis,
            require_redis=args.require_redis,
            redis_ttl_s=args.redis_ttl,
            security=_security(args),
            performance_report=args.report,
            detached=args.detached,
            url_column=args.url_column,
            keep_columns=args.keep_columns,
        )
    for warning in caught:
        print(f"thumbflow: warning: {warning.message}", file=sys.stderr)
    where = f"thumbflow: batch {handle.batch_id}"
    if handle.dashboard_link is not None:
        where += f", dashboard {handle.dashboard_link}"
    if page := batches_page_link(handle.dashboard_link):
        where += f", all batches {page}"
    print(where, file=sys.stderr)
    if args.redis:
        print(f"thumbflow: progress in {redact(args.redis)}", file=sys.stderr)
    return handle


def _cancel_after(stop: Interrupted, handle: api.BatchHandle | None) -> int:
    """A stop signal: cancel the batch (nothing new starts, running tasks stop at their next
    image), let the driver finish the manifest, the summary and the final state, then exit."""
    if handle is None:
        print(f"\nthumbflow: {stop.description} before the batch started", file=sys.stderr)
        return stop.exit_code
    print(f"\nthumbflow: {stop.description}, cancelling the batch…", file=sys.stderr)
    with stop_signals_ignored():
        final = handle.cancel()
    manifest = redact_location(handle.manifest)
    print(f"thumbflow: {_status_line(final)}; manifest {manifest}", file=sys.stderr)
    return stop.exit_code


def _exit_code(status: BatchStatus, *, strict: bool) -> int:
    """For automation: a cancelled batch has its own code; with --strict, any image that is
    neither ok nor a duplicate (failed, or cancelled) fails the run."""
    if status.state == "cancelled":
        return EXIT_CANCELLED
    if strict and (status.failed or status.cancelled):
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


def _store(args: argparse.Namespace) -> RedisStore:
    if not args.redis:
        raise ConfigError(f"give --redis URL or set ${api.REDIS_URL_VARIABLE}")
    return RedisStore(args.redis)


def _status(args: argparse.Namespace) -> int:
    stored = _store(args).batch(args.batch_id)
    shape = cli_json.from_store(stored)
    if args.json:
        print(cli_json.dumps(shape))
        return EXIT_OK
    status = stored.status()
    print(_status_line(status))  # the line `watch` ends with
    if rate := rate_text(status):
        print(f"  {rate} over {status.elapsed_s:.1f} s")
    if status.reused:
        print(f"  reused {status.reused} (derivatives made by an earlier run)")
    if stored.stale:
        print(f"  no heartbeat for over {DRIVER_GONE_AFTER_S:.0f} s: its driver is gone")
    if shape["manifest"]:
        print(f"  manifest: {shape['manifest']}")
    if failures := shape["failures_by_code"]:
        print("  failures by code: " + ", ".join(f"{c} {n}" for c, n in failures.items()))
    return EXIT_OK


def _watch(args: argparse.Namespace) -> int:
    """A live bar fed by the batch's event stream; counts are re-read from the batch hash, so
    the bar shows the same exact numbers as ``status``. Ends when the batch does, or when its
    driver is gone."""
    store = _store(args)
    stored = store.batch(args.batch_id)
    status = stored.status()
    view = progress_view(args.progress, args.batch_id, status.total)
    try:
        view.show(status)
        if not status.finished and not stored.stale:
            for _ in store.follow(args.batch_id):
                stored = store.batch(args.batch_id)
                status = stored.status()
                view.show(status)
                if status.finished or stored.stale:
                    break
    finally:
        view.close()
    print(_status_line(status))
    return _driver_gone(args.batch_id) if stored.stale else EXIT_OK


def _driver_gone(batch_id: str) -> int:
    print(
        f"thumbflow: batch {batch_id}: its driver is gone (no heartbeat for over "
        f"{DRIVER_GONE_AFTER_S:.0f} s): nothing processes it any more, and its record expires "
        "within a day; run it again to finish it",
        file=sys.stderr,
    )
    return EXIT_DRIVER_GONE


def _list(args: argparse.Namespace) -> int:
    batches = _store(args).recent(args.limit)
    if args.json:
        print(cli_json.dumps([cli_json.from_store(stored) for stored in batches]))
        return EXIT_OK
    if not batches:
        print("no batches in the progress store")
    for stored in batches:
        status = stored.status()
        rate = rate_text(status)
        print(_status_line(status) + (f" · {rate}" if rate else ""))
    return EXIT_OK


def _cancel(args: argparse.Namespace) -> int:
    store = _store(args)
    stored = store.request_cancel(args.batch_id)
    if stored.status().finished:
        print(f"thumbflow: batch already ended: {_status_line(stored.status())}")
        return EXIT_OK
    print(f"thumbflow: cancel requested for {args.batch_id}", file=sys.stderr)
    if args.no_wait:
        return EXIT_OK
    return _wait_until_settled(store, stored)


def _wait_until_settled(store: RedisStore, stored: StoredBatch) -> int:
    """After a cancel request: wait for the batch's driver to settle it, unless it is gone."""
    deadline = time.monotonic() + CANCEL_WAIT_S
    while not stored.status().finished:
        if stored.stale:
            print(_status_line(stored.status()))
            return _driver_gone(stored.batch_id)
        if time.monotonic() > deadline:
            print(_status_line(stored.status()))
            print(
                f"thumbflow: batch {stored.batch_id} still running {CANCEL_WAIT_S:.0f} s after "
                "the request, though its driver is alive; it may still settle",
                file=sys.stderr,
            )
            return EXIT_INFRASTRUCTURE
        time.sleep(0.2)
        stored = store.batch(stored.batch_id)
    print(_status_line(stored.status()))
    return EXIT_OK


COMMANDS = {
    "run": lambda args: _run_batch(args, args.inputs),
    "demo": _demo,
    "status": _status,
    "watch": _watch,
    "list": _list,
    "cancel": _cancel,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error argparse has printed
        return stop.code if isinstance(stop.code, int) else EXIT_USAGE
    logging.basicConfig(
        level=logging.WARNING - 10 * args.verbose, format="%(levelname)s %(name)s: %(message)s"
    )
    show_dask_logs(args.verbose)
    try:
        code = int(COMMANDS[args.command](args))
        sys.stdout.flush()  # a closed pipe shows here, not at exit where it cannot be caught
        return code
    except BrokenPipeError:
        return _reader_went_away()
    except ConfigError as error:
        print(f"thumbflow: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ClusterLost as error:
        print(f"thumbflow: {error}", file=sys.stderr)
        return EXIT_CLUSTER_LOST
    except CommClosedError:  # the scheduler went away while the batch was being submitted
        print("thumbflow: the Dask scheduler went away; rerun to resume", file=sys.stderr)
        return EXIT_CLUSTER_LOST
    except ThumbflowError as error:
        print(f"thumbflow: {error}", file=sys.stderr)
        return EXIT_INFRASTRUCTURE
    except KeyboardInterrupt:  # status, watch, list, cancel: nothing to clean up
        print("\nthumbflow: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        logging.getLogger("pipeline.cli").exception("internal error")
        print(
            f"thumbflow: internal error, a bug in thumbflow ({type(error).__name__}: {error}); "
            "the traceback is above",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


def _reader_went_away() -> int:
    """stdout was a pipe whose reader stopped reading (``thumbflow list | head -1``): end quietly,
    as a command killed by SIGPIPE would. Python flushes stdout again at exit, and that would
    fail too, so stdout is pointed at devnull first (the recipe in Python's ``signal`` docs)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
