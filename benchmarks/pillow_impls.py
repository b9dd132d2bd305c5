"""Pillow implementations for a bare ``ProcessPoolExecutor``.

``bare`` runs thumbflow's own per-image code (header, ``render_sizes``, ``encode``) with no Dask
around it, so thumbflow's wall time divided by this one is the cost of everything else: the
scheduler, chunking, hashing, atomic writes, records and the manifest.

``tasks`` runs thumbflow's four task functions themselves (hash, validate, resize, encode: the
hashing, atomic writes and records included) one image at a time, without Dask. It splits that
cost in two: ``tasks`` ÷ ``bare`` is thumbflow's own bookkeeping on the workers, thumbflow ÷
``tasks`` is Dask's (scheduler, client, worker machinery) and the driver's manifest.

``seed`` is how the seed did it and the quality reference: a full decode (no ``draft``), EXIF
transpose, the embedded colour profile converted to sRGB, and LANCZOS from the full-size
original to each size separately. It calls no thumbflow code.
"""

from __future__ import annotations

import io
import os

from PIL import Image, ImageCms, ImageOps

from benchmarks.spec import CONFIG, ENCODINGS, SIZES, Job, fit, jpeg_quality, webp_settings
from pipeline.config import FILE_EXTENSIONS, Encoding
from pipeline.stages.encode import encode
from pipeline.stages.resize import render_sizes
from pipeline.stages.validate import read_header
from pipeline.storage import OutputRoot
from pipeline.worker.tasks import encode_chunk, hash_chunk, resize_chunk, validate_chunk

_SRGB = ImageCms.createProfile("sRGB")


def bare(job: Job) -> int:
    """thumbflow's stages on one image; returns the number of files written. Like thumbflow's
    encode task, it encodes a render shared by several sizes (a source smaller than their
    boxes) once per format, so that the ratio of the two measures Dask and bookkeeping only."""
    header = read_header(job.source, os.path.getsize(job.source), CONFIG)
    renders = render_sizes(job.source, header, CONFIG)
    encoded: dict[tuple[int, Encoding], bytes] = {}
    written = 0
    for size in SIZES:
        image = renders[size.name]
        for encoding in ENCODINGS:
            if (id(image), encoding) not in encoded:
                encoded[id(image), encoding] = encode(image, encoding, CONFIG.background)
            job.write(size.name, encoding.extension, encoded[id(image), encoding])
            written += 1
    return written


def tasks(job: Job) -> int:
    """thumbflow's task functions on one image; returns the number of derivatives written.
    They write content-addressed files under the job's folder; each is then linked to the
    path the checks look for (a hard link: microseconds, no copy)."""
    root = OutputRoot(job.folder)
    hashed = hash_chunk([(job.index, job.source)])
    validated = validate_chunk(hashed, frozenset({job.index}), CONFIG, root)
    (result,) = encode_chunk(resize_chunk(validated, CONFIG), CONFIG, root)
    for output in result.outputs:
        # Linked then renamed: the warm-up runs one job in both workers at once.
        target = job.path(output.size, FILE_EXTENSIONS[output.format])
        linked = f"{target}.{os.getpid()}"
        os.link(os.path.join(job.folder, output.path), linked)
        os.replace(linked, target)
    return len(result.outputs)


def _to_srgb(image: Image.Image) -> Image.Image:
    """RGB in sRGB: the seed asked for profiles to be converted, as thumbflow does."""
    profile = image.info.get("icc_profile")
    if profile and image.mode in ("RGB", "CMYK"):
        converted = ImageCms.profileToProfile(image, io.BytesIO(profile), _SRGB, outputMode="RGB")
        if converted is not None:
            return converted
    return image if image.mode == "RGB" else image.convert("RGB")


def pillow_bytes(image: Image.Image, extension: str) -> bytes:
    buffer = io.BytesIO()
    if extension == "jpg":
        image.save(buffer, "JPEG", quality=jpeg_quality())
    else:
        quality, method = webp_settings()
        image.save(buffer, "WEBP", quality=quality, method=method)
    return buffer.getvalue()


def full_decode(source: str) -> Image.Image:
    """The whole image (no ``draft``), turned upright, in sRGB: the seed's starting point and
    the pixels every fidelity comparison is made against."""
    with Image.open(source) as opened:
        upright = ImageOps.exif_transpose(opened)
    return _to_srgb(upright)


def seed(job: Job) -> int:
    original = full_decode(job.source)
    written = 0
    for size in SIZES:
        resized = original.resize(fit(*original.size, size), Image.Resampling.LANCZOS)
        for encoding in ENCODINGS:
            job.write(size.name, encoding.extension, pillow_bytes(resized, encoding.extension))
            written += 1
    return written
