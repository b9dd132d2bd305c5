"""Size, Encoding and PipelineConfig: what parses, what is refused with ConfigError, and when the
fingerprint (which names a batch's outputs) changes."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pipeline.config import DEFAULT_SIZES, Encoding, PipelineConfig, Size
from pipeline.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("thumb=150x150", Size(name="thumb", width=150, height=150), id="fit-default"),
        pytest.param(
            "avatar=256x256:cover",
            Size(name="avatar", width=256, height=256, mode="cover"),
            id="cover",
        ),
        pytest.param(
            "banner=1200x300:pad", Size(name="banner", width=1200, height=300, mode="pad"), id="pad"
        ),
        pytest.param(
            "medium=800x600:fit", Size(name="medium", width=800, height=600), id="fit-explicit"
        ),
        pytest.param(
            "  hero=1920x1080\n", Size(name="hero", width=1920, height=1080), id="surrounding-space"
        ),
        pytest.param(
            "x_2-b=1x16384", Size(name="x_2-b", width=1, height=16384), id="edge-names-and-sides"
        ),
    ],
)
def test_size_parse(text, expected):
    assert Size.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("thumb", id="no-box"),
        pytest.param("thumb=150", id="one-side"),
        pytest.param("thumb=150x", id="missing-height"),
        pytest.param("=150x150", id="no-name"),
        pytest.param("Thumb=150x150", id="upper-case-name"),
        pytest.param("my thumb=150x150", id="space-in-name"),
        pytest.param("-thumb=150x150", id="name-starts-with-dash"),
        pytest.param("a" * 33 + "=150x150", id="name-too-long"),
        pytest.param("thumb=0x150", id="zero-width"),
        pytest.param("thumb=150x0", id="zero-height"),
        pytest.param("thumb=-1x150", id="negative-width"),
        pytest.param("thumb=16385x150", id="width-over-16384"),
        pytest.param("thumb=150.5x150", id="fractional-width"),
        pytest.param("thumb=150*150", id="wrong-separator"),
        pytest.param("thumb=150x150:stretch", id="unknown-mode"),
        pytest.param("thumb=150x150:", id="empty-mode"),
        pytest.param("", id="empty"),
    ],
)
def test_size_parse_refuses_malformed_text(text):
    with pytest.raises(ConfigError):
        Size.parse(text)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"name": "thumb", "width": 0, "height": 10}, id="zero-width"),
        pytest.param({"name": "thumb", "width": 10, "height": 20_000}, id="height-too-large"),
        pytest.param({"name": "", "width": 10, "height": 10}, id="empty-name"),
        pytest.param({"name": "thumb", "width": 10, "height": 10, "mode": "zoom"}, id="bad-mode"),
    ],
)
def test_size_refuses_invalid_fields(fields):
    with pytest.raises(ConfigError):
        Size(**fields)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("jpeg", Encoding(format="jpeg", quality=85), id="jpeg-default-quality"),
        pytest.param("jpg", Encoding(format="jpeg", quality=85), id="jpg-alias"),
        pytest.param("jpg:90", Encoding(format="jpeg", quality=90), id="jpg-alias-with-quality"),
        pytest.param("JPEG:50", Encoding(format="jpeg", quality=50), id="upper-case"),
        pytest.param("webp", Encoding(format="webp", quality=80), id="webp-default-quality"),
        pytest.param("webp:75", Encoding(format="webp", quality=75), id="webp-with-quality"),
        pytest.param("avif", Encoding(format="avif", quality=60), id="avif-default-quality"),
        pytest.param("avif:1", Encoding(format="avif", quality=1), id="lowest-quality"),
        pytest.param("webp:100", Encoding(format="webp", quality=100), id="highest-quality"),
        pytest.param(" WebP:70 ", Encoding(format="webp", quality=70), id="surrounding-space"),
    ],
)
def test_encoding_parse(text, expected):
    assert Encoding.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("png", id="unsupported-format"),
        pytest.param("", id="empty"),
        pytest.param(":80", id="quality-without-format"),
        pytest.param("webp:high", id="word-quality"),
        pytest.param("webp:0", id="quality-zero"),
        pytest.param("webp:101", id="quality-over-100"),
        pytest.param("jpeg:-5", id="negative-quality"),
        pytest.param("jpeg:7.5", id="fractional-quality"),
        pytest.param("webp:\N{SUPERSCRIPT TWO}", id="superscript-digit-quality"),
    ],
)
def test_encoding_parse_refuses_malformed_text(text):
    with pytest.raises(ConfigError):
        Encoding.parse(text)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"format": "gif", "quality": 80}, id="unknown-format"),
        pytest.param({"format": "webp", "quality": 0}, id="quality-zero"),
        pytest.param({"format": "webp", "quality": 80, "webp_method": 7}, id="webp-method-7"),
        pytest.param({"format": "avif", "quality": 60, "avif_speed": 11}, id="avif-speed-11"),
        pytest.param({"format": "avif", "quality": 60, "avif_speed": -1}, id="avif-speed-negative"),
    ],
)
def test_encoding_refuses_invalid_fields(fields):
    with pytest.raises(ConfigError):
        Encoding(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"sizes": ()}, id="no-sizes"),
        pytest.param({"encodings": ()}, id="no-encodings"),
        pytest.param(
            {"sizes": (Size.parse("thumb=150x150"), Size.parse("thumb=300x300:cover"))},
            id="duplicate-size-name",
        ),
        pytest.param(
            {"encodings": (Encoding.parse("webp:80"), Encoding.parse("webp:60"))},
            id="duplicate-format",
        ),
        pytest.param({"max_pixels": 0}, id="zero-max-pixels"),
        pytest.param({"max_file_bytes": -1}, id="negative-max-file-bytes"),
        pytest.param({"max_decoded_pixels": 0}, id="zero-max-decoded-pixels"),
        pytest.param({"max_frames": 0}, id="zero-max-frames"),
        pytest.param({"max_pixels": 1.5e8}, id="fractional-max-pixels"),
        pytest.param({"max_frames": True}, id="boolean-max-frames"),
        pytest.param({"colour": "cmyk"}, id="unknown-colour-handling"),
        pytest.param({"keep_metadata": "yes"}, id="keep-metadata-not-a-bool"),
        pytest.param({"accept_truncated": 1}, id="accept-truncated-not-a-bool"),
        pytest.param({"background": (256, 0, 0)}, id="background-over-255"),
        pytest.param({"background": (255, 255)}, id="background-two-values"),
    ],
)
def test_pipeline_config_refuses_invalid_settings(fields):
    with pytest.raises(ConfigError):
        PipelineConfig(**fields)


def test_config_error_is_also_a_value_error():
    with pytest.raises(ValueError, match="at least one size"):
        PipelineConfig(sizes=())


BASE = PipelineConfig()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"sizes": (*DEFAULT_SIZES, Size.parse("xl=2560x1440"))}, id="size-added"),
        pytest.param({"sizes": DEFAULT_SIZES[:2]}, id="size-removed"),
        pytest.param(
            {"sizes": (Size.parse("thumbnail=160x160"), *DEFAULT_SIZES[1:])}, id="box-changed"
        ),
        pytest.param(
            {"sizes": (Size.parse("thumbnail=150x150:cover"), *DEFAULT_SIZES[1:])},
            id="mode-changed",
        ),
        pytest.param(
            {"encodings": (Encoding.parse("jpeg:90"), Encoding.parse("webp:80"))},
            id="jpeg-quality-changed",
        ),
        pytest.param(
            {"encodings": (Encoding.parse("jpeg:85"), Encoding.parse("webp:70"))},
            id="webp-quality-changed",
        ),
        pytest.param({"encodings": (*BASE.encodings, Encoding.parse("avif"))}, id="format-added"),
        pytest.param(
            {
                "encodings": (
                    Encoding.parse("jpeg:85"),
                    Encoding(format="webp", quality=80, webp_method=6),
                )
            },
            id="encoder-setting-changed",
        ),
        pytest.param({"background": (0, 0, 0)}, id="background-changed"),
        pytest.param({"colour": "keep"}, id="colour-profile-kept"),
        pytest.param({"keep_metadata": True}, id="metadata-kept"),
    ],
)
def test_fingerprint_changes_with_what_the_outputs_depend_on(changes):
    assert dataclasses.replace(BASE, **changes).fingerprint != BASE.fingerprint


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"max_pixels": 10_000_000}, id="max-pixels"),
        pytest.param({"max_file_bytes": 1024}, id="max-file-bytes"),
        pytest.param({"max_decoded_pixels": 10_000_000}, id="max-decoded-pixels"),
        pytest.param({"max_frames": 5}, id="max-frames"),
        pytest.param({"accept_truncated": True}, id="accept-truncated"),
        pytest.param(
            {"sizes": tuple(Size.parse(f"{s.name}={s.width}x{s.height}") for s in DEFAULT_SIZES)},
            id="equal-sizes-built-again",
        ),
        pytest.param(
            {"encodings": (Encoding.parse("jpg"), Encoding.parse("webp"))},
            id="equal-encodings-parsed-from-text",
        ),
    ],
)
def test_fingerprint_ignores_what_the_outputs_do_not_depend_on(changes):
    assert dataclasses.replace(BASE, **changes).fingerprint == BASE.fingerprint


def test_fingerprint_is_16_hex_characters():
    assert re.fullmatch(r"[0-9a-f]{16}", BASE.fingerprint)


def test_defaults_admit_a_200_mp_phone_photo_and_bound_what_is_decoded():
    """The reasons are in PipelineConfig; these are the numbers the README promises."""
    config = PipelineConfig()
    assert config.max_pixels >= 16_320 * 12_240  # a 200 MP phone sensor
    assert config.max_decoded_pixels == 100_000_000
    assert config.max_frames == 1000
    assert (config.colour, config.keep_metadata, config.accept_truncated) == ("srgb", False, False)
