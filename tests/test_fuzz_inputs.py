"""Fuzzing: small valid images of every accepted format, their bytes flipped, cut, inserted and
deleted by hypothesis, then run through validate → resize → encode. The only outcomes allowed
are derivatives in every format or a typed failure (``ImageError``) from validate or resize;
any other exception is a bug to fix where it is raised."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms

from pipeline.config import Encoding, PipelineConfig
from pipeline.errors import ImageError
from pipeline.stages.encode import encode
from pipeline.stages.resize import cascade, decode
from pipeline.stages.validate import read_header
from tests.imaging import encoded, small_photo

ORIENTATION, MAKE = 0x0112, 0x010F
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><tiff:Orientation="8"/></x:xmpmeta>'


def exif_block() -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "fuzz camera"
    return exif.tobytes()


def animation() -> list[Image.Image]:
    return [small_photo().rotate(angle).convert("P") for angle in (0, 90, 180)]


# Seeds cover each format's parser, and the metadata paths (EXIF, XMP, ICC) the stages read.
SEEDS = {
    "jpeg": encoded(small_photo(), "JPEG", exif=exif_block(), icc_profile=SRGB_PROFILE, xmp=XMP),
    "progressive-jpeg": encoded(small_photo(), "JPEG", progressive=True),
    "grey-jpeg": encoded(small_photo("L"), "JPEG", quality=70),
    "cmyk-jpeg": encoded(small_photo("CMYK"), "JPEG"),
    "png": encoded(small_photo("RGBA"), "PNG", exif=exif_block(), icc_profile=SRGB_PROFILE),
    "palette-png": encoded(small_photo("P"), "PNG", transparency=0),
    "16-bit-png": encoded(
        small_photo("L").convert("I").point(lambda v: v * 257).convert("I;16"), "PNG"
    ),
    "apng": encoded(animation()[0], "PNG", save_all=True, append_images=animation()[1:]),
    "gif": encoded(animation()[0], "GIF", save_all=True, append_images=animation()[1:]),
    "webp": encoded(small_photo("RGBA"), "WEBP", exif=exif_block(), xmp=XMP),
    "lossless-webp": encoded(small_photo(), "WEBP", lossless=True),
    "tiff": encoded(small_photo(), "TIFF", compression="tiff_lzw", exif=exif_block()),
    "bmp": encoded(small_photo(), "BMP"),
    "avif": encoded(small_photo(), "AVIF", exif=exif_block(), quality=50),
}
CONFIGS = (
    PipelineConfig(),
    PipelineConfig(
        encodings=tuple(Encoding.parse(name) for name in ("jpeg", "webp", "avif")),
        colour="keep",
        keep_metadata=True,
        accept_truncated=True,
    ),
)


@st.composite
def damaged(draw: st.DrawFn) -> tuple[str, bytes]:
    """A seed with one to four mutations: byte flips, a cut, an insertion or a deletion.

    Positions come from a seeded ``Random``: hypothesis's own integers favour the ends of a
    range, which would leave the middle of every file, where the pixel data is, untouched."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    data = bytearray(SEEDS[name])
    for kind in draw(
        st.lists(st.sampled_from(["flip", "cut", "insert", "delete"]), min_size=1, max_size=4)
    ):
        position = rng.randrange(max(1, len(data)))
        if kind == "flip" and data:
            data[position] ^= rng.randrange(1, 256)
        elif kind == "cut":
            del data[position:]
        elif kind == "insert":
            data[position:position] = rng.randbytes(rng.randrange(1, 65))
        elif kind == "delete":
            del data[position : position + rng.randrange(1, 65)]
    return name, bytes(data)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "input"


# Pillow reports damaged metadata as UserWarnings and carries on; a worker prints them, while
# pytest's "error" filter would turn them into exceptions, hiding the paths after them.
@pytest.mark.filterwarnings("ignore::UserWarning")
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=damaged(), config_index=st.integers(0, len(CONFIGS) - 1))
def test_damaged_bytes_give_derivatives_or_a_typed_failure(scratch, case, config_index):
    _, content = case
    config = CONFIGS[config_index]
    scratch.write_bytes(content)
    source = str(scratch)
    try:
        header = read_header(source, len(content), config)
        decoded = decode(source, header, config)
    except ImageError as refused:
        failure = refused.failure
    else:
        failure = None
    if failure is not None:
        event(f"{failure.step}: {failure.code}")
        assert failure.step in ("validate", "resize")
        assert source in failure.message
        return
    event("derivatives")
    for image in cascade(decoded, config).values():
        for encoding in config.encodings:
            data = encode(image, encoding, config.background, decoded.carried)
            with Image.open(io.BytesIO(data)) as written:
                assert written.size == image.size
