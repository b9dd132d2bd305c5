"""Sources beside their derivatives, embedded as data URIs so a saved notebook keeps them.
Runs in the notebook's kernel."""

from __future__ import annotations

import base64
import heapq
import html
import io
import json
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.driver.manifest import manifest_path
from pipeline.errors import ConfigError, InputError
from pipeline.notebook.html import OUTCOME_COLOURS, HtmlFragment
from pipeline.results import BatchReport
from pipeline.stages.sources import is_url, open_binary

MIME_TYPES = {"jpeg": "image/jpeg", "webp": "image/webp", "avif": "image/avif", "png": "image/png"}
SOURCE_PREVIEW_PX = 200  # the longer side of a source's preview in the gallery


def gallery(
    manifest_path_or_report: BatchReport | str | os.PathLike[str],
    limit: int = 12,
    size: str = "thumbnail",
    *,
    image_format: str | None = None,
) -> HtmlFragment:
    """The first ``limit`` inputs of a finished batch (in input order), each source beside its
    ``size`` derivative in ``image_format`` (default: the first format the batch made).

    Sources are shown downscaled, derivatives as produced; both are embedded as data URIs so
    the notebook carries them. Failed inputs show their code and message, duplicates name the
    input they duplicate, cancelled inputs are marked.
    """
    if limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    manifest, root = _locate_manifest(manifest_path_or_report)
    total, rows = _first_rows(manifest, limit)
    made = {output["size"] for row in rows for output in row["outputs"]}
    if made and size not in made:
        raise ConfigError(f"this batch made no {size!r} derivatives; it made {sorted(made)}")
    cards = "".join(_gallery_card(row, root, size, image_format) for row in rows)
    batch_id = posixpath.basename(manifest).removesuffix(".jsonl")
    heading = f"batch {batch_id}: the first {len(rows)} of {total} inputs, {size}"
    markup = (
        '<div class="thumbflow-gallery" style="font-family:sans-serif;font-size:12px">'
        f'<div style="margin:4px 0">{html.escape(heading)}</div>'
        f'<div style="display:flex;flex-wrap:wrap;gap:8px">{cards}</div></div>'
    )
    return HtmlFragment(markup, f"<gallery of {heading}>")


def _locate_manifest(where: BatchReport | str | os.PathLike[str]) -> tuple[str, str]:
    """The manifest's path and its output root, from a report or ``<root>/manifests/<id>.jsonl``."""
    if isinstance(where, BatchReport):
        root = where.output.rstrip("/") or "/"
        return f"{root}/{manifest_path(where.status.batch_id)}", root
    text = os.fspath(where)
    if not is_url(text):
        text = Path(text).as_posix()
    folder = posixpath.dirname(text)
    if posixpath.basename(folder) != "manifests":
        raise InputError(
            f"{text!r} is not a thumbflow manifest: expected <output>/manifests/<batch id>.jsonl"
        )
    return text, posixpath.dirname(folder) or "."


def _first_rows(manifest: str, limit: int) -> tuple[int, list[dict[str, Any]]]:
    """The row count and the ``limit`` rows with the lowest input index. Rows are in finishing
    order on disk; streaming them through a heap keeps a 10^6-row manifest cheap to preview."""
    total = 0

    def rows() -> Iterator[dict[str, Any]]:
        nonlocal total
        try:
            with open_binary(manifest) as stream:
                for line in stream:
                    if line.strip():
                        total += 1
                        yield json.loads(line)
        except FileNotFoundError as error:
            raise InputError(
                f"no manifest at {manifest}: it appears when the batch ends "
                "(wait with handle.result())"
            ) from error

    first = heapq.nsmallest(limit, rows(), key=lambda row: int(row["index"]))
    return total, first


def _gallery_card(row: dict[str, Any], root: str, size: str, image_format: str | None) -> str:
    status = str(row["status"])
    name = posixpath.basename(str(row["source"]))
    source_html, source_caption = _source_preview(str(row["source"]))
    derivative_html, derivative_caption = _derivative(row, root, size, image_format)
    badge = f'<b style="color:{OUTCOME_COLOURS.get(status, "#000")}">{html.escape(status)}</b>'
    detail = ""
    if status == "failed" and row.get("failure"):
        failure = row["failure"]
        badge += f" · <code>{html.escape(str(failure['code']))}</code>"
        detail = f"<div>{html.escape(str(failure['message']))}</div>"
    elif status == "duplicate" and row.get("duplicate_of"):
        detail = f"<div>same bytes as {html.escape(str(row['duplicate_of']))}</div>"
    elif row.get("reused"):
        detail = "<div>reused from an earlier run</div>"
    return (
        f'<div class="thumbflow-item" data-status="{html.escape(status)}" '
        'style="border:1px solid #ddd;border-radius:4px;padding:6px;max-width:560px">'
        f"<div><b>#{int(row['index'])}</b> {html.escape(name)} · {badge}</div>{detail}"
        '<div style="display:flex;align-items:center;gap:6px;margin-top:4px">'
        f'<figure style="margin:0">{source_html}<figcaption>{source_caption}</figcaption>'
        "</figure><span>→</span>"
        f'<figure style="margin:0">{derivative_html}<figcaption>{derivative_caption}'
        "</figcaption></figure></div></div>"
    )


def _placeholder(reason: str) -> str:
    return (
        f'<div style="width:{SOURCE_PREVIEW_PX // 2}px;height:{SOURCE_PREVIEW_PX // 2}px;'
        "background:#f3f3f3;color:#777;display:flex;align-items:center;justify-content:center;"
        f'text-align:center">{html.escape(reason)}</div>'
    )


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _source_preview(source: str) -> tuple[str, str]:
    """A small upright JPEG (PNG if it has alpha) of the source and a caption with its size.
    A source that cannot be previewed (the reason it failed, often) gets a placeholder."""
    data = b""
    try:
        with open_binary(source) as stream:
            data = stream.read()
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in (5, 6, 7, 8):  # stored sideways
                width, height = height, width
            kind = image.format or "?"
            # draft() lets JPEG decode at 1/2..1/8 scale: a 12 MP source previews in ~20 ms.
            image.draft("RGB", (SOURCE_PREVIEW_PX, SOURCE_PREVIEW_PX))
            preview = ImageOps.exif_transpose(image)
            preview.thumbnail((SOURCE_PREVIEW_PX, SOURCE_PREVIEW_PX))
            encoded = io.BytesIO()
            if preview.mode in ("RGBA", "LA", "PA") or "transparency" in preview.info:
                preview.save(encoded, "PNG")
                mime = "image/png"
            else:
                preview.convert("RGB").save(encoded, "JPEG", quality=80)
                mime = "image/jpeg"
    except FileNotFoundError:
        return _placeholder("source not found"), "source"
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError):
        return _placeholder("no preview"), f"source · {_kilobytes(len(data))}"
    img = f'<img src="{_data_uri(mime, encoded.getvalue())}" alt="source">'
    return img, f"source {width}&times;{height} {kind} · {_kilobytes(len(data))}"


def _derivative(
    row: dict[str, Any], root: str, size: str, image_format: str | None
) -> tuple[str, str]:
    """The derivative as produced (its own bytes, not re-encoded) and a caption."""
    candidates = [
        output
        for output in row["outputs"]
        if output["size"] == size and image_format in (None, output["format"])
    ]
    if not candidates:
        return _placeholder("no derivative"), size
    output = candidates[0]
    try:
        with open_binary(f"{root}/{output['path']}") as stream:
            data = stream.read()
    except OSError as error:
        return _placeholder(f"cannot read: {error.strerror or error}"), size
    mime = MIME_TYPES.get(output["format"], f"image/{output['format']}")
    img = (
        f'<img src="{_data_uri(mime, data)}" alt="{html.escape(size)}" '
        'style="max-width:320px;max-height:320px">'
    )
    caption = (
        f"{html.escape(size)} {output['width']}&times;{output['height']} "
        f"{html.escape(output['format'])} · {_kilobytes(output['bytes'])}"
    )
    return img, caption


def _kilobytes(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    return f"{count / 1024:.1f} KB" if count < 1024 * 1024 else f"{count / 1024**2:.1f} MB"
