"""fit, cover and pad geometry: a table of the shapes that matter, then properties for any
source size and any box (fits, never upscales, never zero, keeps the ratio within a pixel)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.config import Size
from pipeline.stages.geometry import (
    Plan,
    centred_crop,
    cover_box,
    draft_request,
    fit_within,
    plan_for,
)

source_sides = st.integers(min_value=1, max_value=20_000)
box_sides = st.integers(min_value=1, max_value=4_000)


def keeps_ratio_within_a_pixel(result: tuple[int, int], source: tuple[int, int]) -> bool:
    """Rounding each side by up to a pixel moves w/h off W/H by at most (1 + W/H) / h; the
    comparison is multiplied out (|w*H - h*W| <= W + H) so it stays in exact integers."""
    (width, height), (source_width, source_height) = result, source
    return abs(width * source_height - height * source_width) <= source_width + source_height


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        pytest.param((4000, 3000), (800, 600), (800, 600), id="landscape-same-ratio-as-box"),
        pytest.param((3000, 2000), (150, 150), (150, 100), id="landscape-into-square"),
        pytest.param((2000, 3000), (150, 150), (100, 150), id="portrait-into-square"),
        pytest.param((1000, 1000), (800, 600), (600, 600), id="square-into-landscape"),
        pytest.param((1000, 1000), (600, 800), (600, 600), id="square-into-portrait"),
        pytest.param((640, 480), (1920, 1080), (640, 480), id="smaller-than-box-not-upscaled"),
        pytest.param((100, 50), (100, 50), (100, 50), id="exactly-the-box"),
        pytest.param((2000, 100), (1920, 1080), (1920, 96), id="only-width-over-the-box"),
        pytest.param((12000, 3), (150, 150), (150, 1), id="wide-strip-keeps-one-row"),
        pytest.param((3, 12000), (150, 150), (1, 150), id="tall-strip-keeps-one-column"),
        pytest.param((1, 1), (150, 150), (1, 1), id="single-pixel"),
    ],
)
def test_fit_within_gives_the_largest_size_inside_the_box(source, box, expected):
    assert fit_within(*source, *box) == expected


@pytest.mark.parametrize(
    ("source", "box", "expected"),
    [
        pytest.param((4000, 3000), (150, 150), (200, 150), id="landscape-covers-square"),
        pytest.param((3000, 4000), (150, 150), (150, 200), id="portrait-covers-square"),
        pytest.param((1920, 1080), (800, 600), (1067, 600), id="wider-than-box-ratio"),
        pytest.param((1000, 1000), (800, 600), (800, 800), id="square-covers-landscape"),
        pytest.param((100, 80), (150, 150), (100, 80), id="smaller-than-box-not-upscaled"),
        pytest.param((400, 100), (150, 150), (400, 100), id="one-side-short-not-upscaled"),
        pytest.param((12000, 3), (150, 150), (12000, 3), id="wide-strip-kept-whole"),
    ],
)
def test_cover_box_gives_the_smallest_size_covering_the_box(source, box, expected):
    assert cover_box(*source, *box) == expected


@pytest.mark.parametrize(
    ("scaled", "box", "expected"),
    [
        pytest.param((200, 150), (150, 150), (25, 0, 175, 150), id="trims-left-and-right"),
        pytest.param((150, 200), (150, 150), (0, 25, 150, 175), id="trims-top-and-bottom"),
        pytest.param((201, 150), (150, 150), (25, 0, 175, 150), id="odd-overflow-rounds-left"),
        pytest.param((150, 150), (150, 150), (0, 0, 150, 150), id="exact-fit-keeps-all"),
        pytest.param((100, 80), (150, 150), (10, 0, 90, 80), id="smaller-than-box-box-shaped"),
        pytest.param((400, 100), (150, 150), (150, 0, 250, 100), id="one-side-short-box-shaped"),
        pytest.param((90, 200), (300, 100), (0, 85, 90, 115), id="small-portrait-into-banner"),
        pytest.param((12000, 3), (150, 150), (5998, 0, 6001, 3), id="wide-strip-centre-square"),
    ],
)
def test_centred_crop_cuts_the_overflow_evenly(scaled, box, expected):
    assert centred_crop(*scaled, *box) == expected


@pytest.mark.parametrize(
    ("source", "size", "expected_plan", "expected_output"),
    [
        pytest.param(
            (4000, 3000),
            Size(name="medium", width=800, height=600),
            Plan(scaled=(800, 600)),
            (800, 600),
            id="fit-resizes-only",
        ),
        pytest.param(
            (4000, 3000),
            Size(name="square", width=150, height=150, mode="cover"),
            Plan(scaled=(200, 150), crop=(25, 0, 175, 150)),
            (150, 150),
            id="cover-landscape-crops-the-sides",
        ),
        pytest.param(
            (2000, 3000),
            Size(name="banner", width=600, height=200, mode="cover"),
            Plan(scaled=(600, 900), crop=(0, 350, 600, 550)),
            (600, 200),
            id="cover-portrait-into-banner-crops-top-and-bottom",
        ),
        pytest.param(
            (100, 80),
            Size(name="square", width=150, height=150, mode="cover"),
            Plan(scaled=(100, 80), crop=(10, 0, 90, 80)),
            (80, 80),
            id="cover-small-source-not-upscaled-but-box-shaped",
        ),
        pytest.param(
            (3000, 2000),
            Size(name="square", width=150, height=150, mode="pad"),
            Plan(scaled=(150, 100), canvas=(150, 150)),
            (150, 150),
            id="pad-landscape-to-the-box",
        ),
        pytest.param(
            (100, 80),
            Size(name="square", width=150, height=150, mode="pad"),
            Plan(scaled=(100, 80), canvas=(150, 150)),
            (150, 150),
            id="pad-small-source-still-gives-the-box",
        ),
    ],
)
def test_plan_for_each_mode(source, size, expected_plan, expected_output):
    plan = plan_for(*source, size)
    assert plan == expected_plan
    assert plan.output_size == expected_output


@pytest.mark.parametrize(
    ("plans", "transposed", "expected"),
    [
        pytest.param(
            [Plan(scaled=(1440, 1080)), Plan(scaled=(800, 600)), Plan(scaled=(150, 113))],
            False,
            (1440, 1080),
            id="largest-plan-as-stored",
        ),
        pytest.param(
            [Plan(scaled=(1440, 1080)), Plan(scaled=(800, 600))],
            True,
            (1080, 1440),
            id="sideways-file-asks-for-the-swapped-size",
        ),
        pytest.param(
            [Plan(scaled=(200, 150), crop=(25, 0, 175, 150)), Plan(scaled=(150, 300))],
            False,
            (200, 300),
            id="each-side-from-whichever-plan-needs-most",
        ),
        pytest.param(
            [Plan(scaled=(150, 100), canvas=(150, 150))],
            False,
            (150, 100),
            id="pad-asks-for-the-scaled-image-not-the-canvas",
        ),
    ],
)
def test_draft_request_holds_every_plan(plans, transposed, expected):
    assert draft_request(plans, transposed) == expected


@given(source_sides, source_sides, box_sides, box_sides)
def test_fit_within_fits_never_upscales_never_zero_and_keeps_the_ratio(
    width, height, box_width, box_height
):
    fitted = fit_within(width, height, box_width, box_height)
    assert 1 <= fitted[0] <= min(box_width, width)
    assert 1 <= fitted[1] <= min(box_height, height)
    assert keeps_ratio_within_a_pixel(fitted, (width, height))
    # as large as allowed: one side reaches the box, or the source is kept whole
    assert fitted[0] == min(box_width, width) or fitted[1] == min(box_height, height)


@given(source_sides, source_sides, box_sides, box_sides)
def test_cover_plan_crops_inside_the_scaled_image_and_outputs_at_most_the_box(
    width, height, box_width, box_height
):
    plan = plan_for(
        width, height, Size(name="box", width=box_width, height=box_height, mode="cover")
    )
    scaled_width, scaled_height = plan.scaled
    assert 1 <= scaled_width <= width
    assert 1 <= scaled_height <= height
    assert scaled_width >= min(box_width, width)
    assert scaled_height >= min(box_height, height)
    assert keeps_ratio_within_a_pixel(plan.scaled, (width, height))
    output_width, output_height = plan.output_size
    assert output_width <= min(box_width, scaled_width)
    assert output_height <= min(box_height, scaled_height)
    # the box's shape: the box itself, or (small source) the box's ratio within a pixel
    assert keeps_ratio_within_a_pixel(plan.output_size, (box_width, box_height))
    # as large as allowed: the box, or one whole side of the source
    assert plan.output_size == (box_width, box_height) or (
        output_width == scaled_width or output_height == scaled_height
    )
    assert plan.crop is not None
    left, top, right, bottom = plan.crop
    assert 0 <= left < right <= scaled_width
    assert 0 <= top < bottom <= scaled_height
    # centred: the two trimmed margins differ by at most the odd pixel
    assert abs(left - (scaled_width - right)) <= 1
    assert abs(top - (scaled_height - bottom)) <= 1


@given(source_sides, source_sides, box_sides, box_sides)
def test_pad_plan_outputs_exactly_the_box_around_the_fitted_image(
    width, height, box_width, box_height
):
    plan = plan_for(width, height, Size(name="box", width=box_width, height=box_height, mode="pad"))
    assert plan.output_size == (box_width, box_height)
    assert plan.scaled == fit_within(width, height, box_width, box_height)
    assert plan.scaled[0] <= box_width
    assert plan.scaled[1] <= box_height
