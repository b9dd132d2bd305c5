"""decode → cascade → render_sizes on real files: sizes fit their boxes, EXIF orientation
comes out upright, JPEG decodes at reduced scale, every mode reaches a working mode, and damage
is a typed failure."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from pipeline.config import Encoding, PipelineConfig, Size
from pipeline.errors import ImageError
from pipeline.samples import photo_like
from pipeline.stages.encode import encode
from pipeline.stages.geometry import draft_request, plan_for
from pipeline.stages.resize import decode, render_sizes
from pipeline.stages.validate import read_header

ORIENTATION_TAG = 0x0112
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
GREEN = (0, 160, 0)
T = Image.Transpose
# How a camera stores the upright picture for each EXIF orientation (the inverse of what a
# viewer applies to show it), from the EXIF 2.3 table: 6 = "0th row is the visual right side".
STORED_AS = {
    1: None,
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_90,
    7: T.TRANSVERSE,
    8: T.ROTATE_270,
}


def render(path: Path, config: PipelineConfig | None = None) -> dict[str, Image.Image]:
    config = config or PipelineConfig()
    header = read_header(str(path), path.stat().st_size, config)
    return render_sizes(str(path), header, config)


def save_with_orientation(image: Image.Image, path: Path, orientation: int) -> Path:
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    image.save(path, exif=exif.tobytes())
    return path


def keeps_ratio_within_a_pixel(result: tuple[int, int], source: tuple[int, int]) -> bool:
    """|w/h - W/H| within what rounding each side by a pixel allows, in exact integers."""
    (width, height), (source_width, source_height) = result, source
    return abs(width * source_height - height * source_width) <= source_width + source_height


def is_close(pixel: tuple[int, ...], colour: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def red_corner_picture() -> Image.Image:
    """Upright 400x200: a red block in the top-left corner, the rest blue, so any rotation or
    mirroring shows in where the red ends up."""
    image = Image.new("RGB", (400, 200), BLUE)
    image.paste(RED, (0, 0, 100, 100))
    return image


@pytest.mark.parametrize(
    ("file_name", "source_size"),
    [
        pytest.param("landscape.jpg", (3000, 2000), id="landscape-jpeg"),
        pytest.param("portrait.jpg", (2000, 3000), id="portrait-jpeg"),
        pytest.param("square.jpg", (1200, 1200), id="square-jpeg"),
        pytest.param("widescreen.png", (2560, 1080), id="widescreen-png"),
        pytest.param("panorama.jpg", (6000, 40), id="panorama-strip"),
        pytest.param("small.jpg", (640, 480), id="smaller-than-medium-and-large"),
        pytest.param("tiny.png", (90, 60), id="smaller-than-every-box"),
    ],
)
def test_default_sizes_fit_their_boxes_and_keep_the_aspect_ratio(tmp_path, file_name, source_size):
    path = tmp_path / file_name
    photo_like(*source_size, seed=5).save(path)
    config = PipelineConfig()
    rendered = render(path, config)
    assert set(rendered) == {size.name for size in config.sizes}
    for size in config.sizes:
        width, height = rendered[size.name].size
        assert 1 <= width <= min(size.width, source_size[0]), size.name
        assert 1 <= height <= min(size.height, source_size[1]), size.name
        assert keeps_ratio_within_a_pixel((width, height), source_size), size.name


def test_source_smaller_than_a_box_keeps_its_own_size(tmp_path):
    path = tmp_path / "small.jpg"
    photo_like(640, 480, seed=5).save(path)
    rendered = render(path)
    assert rendered["medium"].size == (640, 480)
    assert rendered["large"].size == (640, 480)


@pytest.mark.parametrize(
    "file_name",
    [
        "upright.jpg",
        "upright.png",
        "upright.webp",
        "upright.avif",
        "upright.tif",
    ],
)
@pytest.mark.parametrize("orientation", list(STORED_AS))
def test_every_exif_orientation_renders_upright(tmp_path, orientation, file_name):
    transpose = STORED_AS[orientation]
    picture = red_corner_picture()
    stored = picture.transpose(transpose) if transpose is not None else picture
    path = save_with_orientation(stored, tmp_path / file_name, orientation)
    for name, image in render(path).items():
        assert image.width > image.height, (name, image.size)
        assert keeps_ratio_within_a_pixel(image.size, picture.size), (name, image.size)
        rgb = image.convert("RGB")
        assert is_close(rgb.getpixel((2, 2)), RED), (name, rgb.getpixel((2, 2)))
        bottom_right = rgb.getpixel((image.width - 3, image.height - 3))
        assert is_close(bottom_right, BLUE), (name, bottom_right)


@pytest.mark.parametrize("file_name", ["upright.jpg", "upright.png", "upright.webp"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_an_xmp_orientation_without_exif_is_applied_too(tmp_path, orientation, file_name):
    """Some editors write tiff:Orientation in XMP only; Pillow exposes it, and so do we."""
    stored = red_corner_picture().transpose(STORED_AS[orientation])
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
        '22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
        f'tiff:Orientation="{orientation}"/></rdf:RDF></x:xmpmeta>'
    )
    path = tmp_path / file_name
    if file_name.endswith(".png"):
        text = PngImagePlugin.PngInfo()
        text.add_itxt("XML:com.adobe.xmp", xmp)
        stored.save(path, pnginfo=text)
    else:
        stored.save(path, xmp=xmp.encode())
    thumbnail = render(path)["thumbnail"].convert("RGB")
    assert thumbnail.width > thumbnail.height
    assert is_close(thumbnail.getpixel((2, 2)), RED), thumbnail.getpixel((2, 2))


@pytest.mark.parametrize(
    "orientation",
    [pytest.param(1, id="stored-upright"), pytest.param(6, id="stored-sideways")],
)
def test_large_jpeg_decodes_at_reduced_scale_but_holds_every_size(tmp_path, orientation):
    upright = photo_like(4000, 3000, seed=9)
    stored = upright.transpose(STORED_AS[orientation]) if orientation != 1 else upright
    path = save_with_orientation(stored, tmp_path / "camera.jpg", orientation)
    config = PipelineConfig()
    header = read_header(str(path), path.stat().st_size, config)
    plans = [plan_for(header.width, header.height, size) for size in config.sizes]
    decoded = decode(str(path), header, config).image  # as stored: not yet upright
    needed = draft_request(plans, header.transposed)
    assert decoded.width < stored.width
    assert decoded.height < stored.height
    assert decoded.width >= needed[0]
    assert decoded.height >= needed[1]


def palette_with_transparency() -> Image.Image:
    image = Image.new("P", (300, 200), 1)
    image.putpalette([0, 0, 0, 200, 30, 30] + [0, 0, 0] * 254)
    image.paste(0, (0, 0, 150, 200))
    image.info["transparency"] = 0
    return image


def sixteen_bit_grey() -> Image.Image:
    # built through "I": Image.new/paste on "I;16" fill byte-wise
    return Image.new("I", (300, 200), 30_000).convert("I;16")


@pytest.mark.parametrize(
    ("file_name", "make_source", "expected_mode"),
    [
        pytest.param("logo.png", palette_with_transparency, "RGBA", id="palette-transparency"),
        pytest.param("depth.png", sixteen_bit_grey, "L", id="16-bit-grey"),
        pytest.param(
            "print.jpg", lambda: Image.new("CMYK", (300, 200), (0, 200, 200, 0)), "RGB", id="cmyk"
        ),
        pytest.param(
            "mask.png", lambda: Image.new("LA", (300, 200), (120, 200)), "LA", id="grey-alpha"
        ),
        pytest.param("line.png", lambda: Image.new("1", (300, 200), 1), "L", id="bilevel"),
        pytest.param(
            "flat.gif", lambda: photo_like(300, 200, seed=2).convert("P"), "RGB", id="gif-palette"
        ),
        pytest.param("scan.jpg", lambda: Image.new("L", (300, 200), 90), "L", id="greyscale"),
        pytest.param(
            "cutout.webp", lambda: photo_like(300, 200, seed=2, mode="RGBA"), "RGBA", id="rgba"
        ),
    ],
)
def test_every_source_mode_reaches_a_working_mode(tmp_path, file_name, make_source, expected_mode):
    path = tmp_path / file_name
    make_source().save(path)
    rendered = render(path)
    assert {image.mode for image in rendered.values()} == {expected_mode}


def test_palette_transparency_stays_transparent(tmp_path):
    path = tmp_path / "logo.png"
    palette_with_transparency().save(path)
    thumbnail = render(path)["thumbnail"]
    assert thumbnail.getpixel((5, 5))[3] == 0
    assert thumbnail.getpixel((thumbnail.width - 5, 5)) == (200, 30, 30, 255)


def test_sixteen_bit_grey_is_scaled_to_mid_grey_not_clipped_to_white(tmp_path):
    path = tmp_path / "depth.png"
    sixteen_bit_grey().save(path)
    with Image.open(path) as stored:
        assert stored.mode == "I;16"
    for image in render(path).values():
        low, high = image.getextrema()
        assert 30_000 // 257 - 2 <= low <= high <= 30_000 // 257 + 2


@pytest.mark.parametrize(
    "size",
    [pytest.param((300, 200), id="smaller-than-medium"), pytest.param((3000, 2000), id="reduced")],
)
def test_cmyk_colours_survive_conversion_to_rgb(tmp_path, size):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", size, (0, 255, 255, 0)).save(path)  # pure red ink
    for image in render(path).values():
        assert image.mode == "RGB"
        assert is_close(image.getpixel((10, 10)), RED)


COVER_SIZES = (
    Size(name="square", width=150, height=150, mode="cover"),
    Size(name="banner", width=600, height=200, mode="cover"),
    Size(name="tall", width=200, height=500, mode="cover"),
)
PAD_SIZES = (
    Size(name="square", width=150, height=150, mode="pad"),
    Size(name="banner", width=600, height=200, mode="pad"),
    Size(name="tall", width=200, height=500, mode="pad"),
)


@pytest.mark.parametrize(
    "source_size",
    [pytest.param((1600, 1200), id="landscape"), pytest.param((1200, 1600), id="portrait")],
)
def test_cover_mode_outputs_exactly_the_box(tmp_path, source_size):
    path = tmp_path / "photo.jpg"
    photo_like(*source_size, seed=4).save(path)
    rendered = render(path, PipelineConfig(sizes=COVER_SIZES))
    for size in COVER_SIZES:
        assert rendered[size.name].size == (size.width, size.height)


@pytest.mark.parametrize(
    ("file_name", "make_source", "expected_mode"),
    [
        pytest.param(
            "landscape.jpg", lambda: photo_like(1600, 1200, seed=4), "RGB", id="landscape"
        ),
        pytest.param("portrait.jpg", lambda: photo_like(1200, 1600, seed=4), "RGB", id="portrait"),
        pytest.param("tiny.jpg", lambda: photo_like(100, 60, seed=4), "RGB", id="smaller-than-box"),
        pytest.param("grey.png", lambda: Image.new("L", (1600, 1200), 90), "RGB", id="grey"),
        pytest.param(
            "cutout.png",
            lambda: photo_like(1600, 1200, seed=4, mode="RGBA"),
            "RGBA",
            id="with-alpha",
        ),
    ],
)
def test_pad_mode_outputs_exactly_the_box_with_background_around_the_picture(
    tmp_path, file_name, make_source, expected_mode
):
    path = tmp_path / file_name
    make_source().save(path)
    rendered = render(path, PipelineConfig(sizes=PAD_SIZES))
    for size in PAD_SIZES:
        image = rendered[size.name]
        assert image.size == (size.width, size.height), size.name
        assert image.mode == expected_mode, size.name
        # none of these sources has the box's ratio, so the top-left corner is always padding
        assert image.convert("RGB").getpixel((0, 0)) == WHITE, size.name


@pytest.mark.parametrize(
    ("source_size", "box", "expected"),
    [
        pytest.param((100, 80), (150, 150), (80, 80), id="small-landscape-into-square"),
        pytest.param((90, 200), (300, 100), (90, 30), id="small-portrait-into-banner"),
        pytest.param((400, 100), (150, 150), (100, 100), id="one-side-shorter-than-the-box"),
    ],
)
def test_cover_keeps_the_box_shape_for_a_source_smaller_than_the_box(
    tmp_path, source_size, box, expected
):
    """Never upscaled, and still the box's aspect ratio: the middle of the source, cut to the
    box's shape. The source's edges are red and blue bands, its middle green, so the pixels
    show the cut is centred."""
    width, height = source_size
    source = Image.new("RGB", source_size, GREEN)
    band = max(1, min(width, height) // 10)
    source.paste(RED, (0, 0, width, band) if width < height else (0, 0, band, height))
    band_box = (
        (0, height - band, width, height) if width < height else (width - band, 0, width, height)
    )
    source.paste(BLUE, band_box)
    path = tmp_path / "small.png"
    source.save(path)
    size = Size(name="avatar", width=box[0], height=box[1], mode="cover")
    image = render(path, PipelineConfig(sizes=(size,)))["avatar"]
    assert image.size == expected
    for corner in ((0, 0), (image.width - 1, image.height - 1)):
        assert is_close(image.getpixel(corner), GREEN, tolerance=8), corner


def picture_with_alpha(path: Path) -> Path:
    """A 400x200 opaque red picture stored with an alpha channel (a cut-out logo's shape)."""
    Image.new("RGBA", (400, 200), (*RED, 255)).save(path)
    return path


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.convert("RGBA")


@pytest.mark.parametrize("format_name", ["webp", "avif"])
def test_pad_pads_a_picture_with_alpha_transparently_where_the_format_keeps_alpha(
    tmp_path, format_name
):
    path = picture_with_alpha(tmp_path / "logo.png")
    size = Size(name="square", width=150, height=150, mode="pad")
    config = PipelineConfig(sizes=(size,), background=(0, 0, 255))
    image = render(path, config)["square"]
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0))[3] == 0  # the padding: clear, not the background
    output = decoded(encode(image, Encoding(format=format_name, quality=80), config.background))
    assert output.size == (150, 150)
    for padding in ((0, 0), (149, 149), (75, 10)):  # above and below the 150x75 picture
        assert output.getpixel(padding)[3] <= 8, padding
    centre = output.getpixel((75, 75))
    assert centre[3] >= 247
    assert is_close(centre[:3], RED)


@pytest.mark.parametrize(
    ("background", "expected"), [((255, 255, 255), WHITE), ((0, 0, 255), BLUE)]
)
def test_pad_of_a_picture_with_alpha_is_the_background_in_a_jpeg(tmp_path, background, expected):
    path = picture_with_alpha(tmp_path / "logo.png")
    size = Size(name="square", width=150, height=150, mode="pad")
    config = PipelineConfig(sizes=(size,), background=background)
    image = render(path, config)["square"]
    output = decoded(encode(image, Encoding(format="jpeg", quality=90), config.background))
    assert output.size == (150, 150)
    for padding in ((0, 0), (149, 149), (75, 10)):
        assert is_close(output.getpixel(padding), (*expected, 255), tolerance=8), padding
    assert is_close(output.getpixel((75, 75)), (*RED, 255))


def test_pad_of_an_opaque_picture_is_the_background_in_every_format(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (400, 200), RED).save(path)
    size = Size(name="square", width=150, height=150, mode="pad")
    config = PipelineConfig(sizes=(size,), background=(0, 0, 255))
    image = render(path, config)["square"]
    for format_name in ("jpeg", "webp", "avif"):
        output = decoded(encode(image, Encoding(format=format_name, quality=90), BLUE))
        assert is_close(output.getpixel((0, 0)), (*BLUE, 255), tolerance=12), format_name


def test_jpeg_cut_to_a_third_passes_validate_but_fails_resize_as_truncated(tmp_path):
    whole = tmp_path / "whole.jpg"
    photo_like(1200, 900, seed=6).save(whole, quality=90)
    path = tmp_path / "truncated_download.jpg"
    content = whole.read_bytes()
    path.write_bytes(content[: len(content) // 3])
    header = read_header(str(path), path.stat().st_size, PipelineConfig())
    assert (header.width, header.height) == (1200, 900)
    with pytest.raises(ImageError) as failed:
        render_sizes(str(path), header, PipelineConfig())
    assert failed.value.failure.step == "resize"
    assert failed.value.failure.code == "truncated"
    assert str(path) in failed.value.failure.message
