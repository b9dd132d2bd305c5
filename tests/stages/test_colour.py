"""colour: every decodable mode reaches one Pillow resizes correctly, then sRGB (or the kept
profile); profiles are only embedded where they describe the pixels."""

from __future__ import annotations

import pytest
from PIL import Image, ImageCms

from pipeline.stages.colour import kept_profile, profile_fits, resizable, to_srgb

SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def palette_image(transparent: bool) -> Image.Image:
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    if transparent:
        image.info["transparency"] = 0
    return image


@pytest.mark.parametrize(
    ("make_source", "expected_mode"),
    [
        pytest.param(lambda: palette_image(transparent=False), "RGB", id="P"),
        pytest.param(lambda: palette_image(transparent=True), "RGBA", id="P-with-tRNS"),
        pytest.param(lambda: Image.new("1", (8, 8), 1), "L", id="bilevel"),
        pytest.param(lambda: Image.new("I", (8, 8), 30_000).convert("I;16"), "L", id="I;16"),
        pytest.param(lambda: Image.new("I", (8, 8), 30_000), "L", id="I"),
        pytest.param(lambda: Image.new("F", (8, 8), 90.0), "L", id="float"),
        pytest.param(lambda: Image.new("RGBA", (8, 8), (9, 9, 9, 9)).convert("RGBa"), "RGBA"),
        pytest.param(lambda: Image.new("LA", (8, 8), (9, 9)).convert("La"), "LA", id="La"),
        pytest.param(lambda: Image.new("RGB", (8, 8), (9, 90, 200)).convert("YCbCr"), "RGB"),
        pytest.param(lambda: Image.new("RGB", (8, 8), (9, 90, 200)).convert("HSV"), "RGB"),
        pytest.param(lambda: Image.new("RGBX", (8, 8), (9, 90, 200, 0)), "RGB", id="RGBX"),
        pytest.param(lambda: Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "CMYK", id="CMYK"),
        pytest.param(lambda: Image.new("LAB", (8, 8), (136, 208, 195)), "RGB", id="LAB"),
    ],
)
def test_every_decoded_mode_becomes_resizable(make_source, expected_mode):
    assert resizable(make_source()).mode == expected_mode


def test_sixteen_bit_grey_is_scaled_not_clipped():
    grey = resizable(Image.new("I", (8, 8), 30_000).convert("I;16"))
    assert grey.getpixel((0, 0)) == round(30_000 / 257)


def test_lab_is_converted_by_colour_science_not_channel_copying():
    # L*=53 a*=80 b*=67 is sRGB's red, in Pillow's 8-bit LAB encoding (a and b offset by 128)
    red = resizable(Image.new("LAB", (8, 8), (136, 208, 195))).getpixel((0, 0))
    assert red[0] > 235, red
    assert max(red[1:]) < 40, red


def test_cmyk_without_a_profile_uses_the_naive_formula():
    assert to_srgb(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), None).getpixel((0, 0)) == (
        255,
        0,
        0,
    )


def channels(pixel: float | tuple[int, ...]) -> tuple[float, ...]:
    return pixel if isinstance(pixel, tuple) else (pixel,)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
def test_an_srgb_profile_keeps_the_mode_and_changes_values_by_rounding_only(mode):
    image = Image.new("RGBA", (8, 8), (40, 120, 200, 128)).convert(mode)
    converted = to_srgb(image, SRGB_PROFILE)
    assert converted.mode == mode
    before, after = channels(image.getpixel((0, 0))), channels(converted.getpixel((0, 0)))
    assert all(abs(a - b) <= 2 for a, b in zip(before, after, strict=True)), (before, after)


def test_an_unusable_profile_leaves_the_pixels_as_they_are():
    image = Image.new("RGB", (8, 8), (40, 120, 200))
    assert to_srgb(image, b"not a profile" * 10).getpixel((0, 0)) == (40, 120, 200)


@pytest.mark.parametrize(
    ("mode", "profile", "kept"),
    [
        pytest.param("RGB", SRGB_PROFILE, True, id="rgb-profile-on-rgb"),
        pytest.param("RGBA", SRGB_PROFILE, True, id="rgb-profile-on-rgba"),
        pytest.param("L", SRGB_PROFILE, False, id="rgb-profile-on-grey"),
        pytest.param("CMYK", SRGB_PROFILE, False, id="cmyk-is-always-converted"),
        pytest.param("RGB", b"\x00" * 16 + b"RGB " + b"garbage" * 10, False, id="unparsable"),
        pytest.param("RGB", None, False, id="no-profile"),
    ],
)
def test_a_profile_is_kept_only_where_it_describes_the_pixels(mode, profile, kept):
    assert kept_profile(mode, profile) == (profile if kept else None)
    if kept:
        assert profile is not None
        assert profile_fits(profile, mode)
