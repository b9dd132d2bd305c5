"""What derivatives carry besides pixels: nothing by default, in every format and resize mode;
with ``keep_metadata`` the source's EXIF (orientation reset to 1, GPS kept, maker note dropped)
and XMP (orientation reset to 1); with ``colour="keep"`` the source's ICC profile."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageCms

from pipeline.config import Encoding, PipelineConfig, Size
from pipeline.samples import photo_like
from pipeline.stages.encode import encode
from pipeline.stages.metadata import EXIF_IFD, MAKER_NOTE
from pipeline.stages.resize import cascade, decode
from pipeline.stages.validate import read_header

ORIENTATION, MAKE, GPS_IFD, GPS_LATITUDE = 0x0112, 0x010F, 0x8825, 2
CAMERA = "thumbflow test camera"
XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf'
    b'-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
    b'tiff:Orientation="6" tiff:Make="thumbflow test camera"/></rdf:RDF></x:xmpmeta>'
)
SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
EVERY_FORMAT = tuple(Encoding.parse(name) for name in ("jpeg", "webp", "avif"))
EVERY_MODE = (
    Size(name="fitted", width=120, height=120),
    Size(name="covered", width=90, height=90, mode="cover"),
    Size(name="padded", width=150, height=90, mode="pad"),
)


def phone_photo(path: Path, mode: str = "RGB") -> Path:
    """Stored sideways (orientation 6) with what phones write: camera, GPS, a maker note, XMP,
    an ICC profile and a comment."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = CAMERA
    exif.get_ifd(GPS_IFD)[GPS_LATITUDE] = (51.0, 30.0, 0.0)
    exif.get_ifd(EXIF_IFD)[MAKER_NOTE] = b"Nikon\x00" + bytes(2000)
    upright = photo_like(320, 200, seed=4)
    upright.paste((255, 0, 0), (0, 0, 40, 40))  # a red top-left corner shows the orientation
    upright.transpose(Image.Transpose.ROTATE_90).convert(mode).save(
        path,
        exif=exif.tobytes(),
        xmp=XMP,
        icc_profile=SRGB_PROFILE,
        comment=b"thumbflow test comment",
    )
    return path


def derivatives(path: Path, config: PipelineConfig) -> dict[tuple[str, str], bytes]:
    header = read_header(str(path), path.stat().st_size, config)
    decoded = decode(str(path), header, config)
    return {
        (name, encoding.format): encode(image, encoding, config.background, decoded.carried)
        for name, image in cascade(decoded, config).items()
        for encoding in config.encodings
    }


def opened(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_nothing_is_carried_by_default(tmp_path, mode):
    path = phone_photo(tmp_path / "phone.jpg", mode)
    config = PipelineConfig(sizes=EVERY_MODE, encodings=EVERY_FORMAT)
    for key, data in derivatives(path, config).items():
        image = opened(data)
        assert not {"exif", "xmp", "icc_profile", "comment"} & set(image.info), key
        assert not image.getexif(), key
        assert b"thumbflow test" not in data, key


def test_kept_exif_and_xmp_say_upright_and_keep_gps_but_not_the_maker_note(tmp_path):
    path = phone_photo(tmp_path / "phone.jpg")
    config = PipelineConfig(sizes=EVERY_MODE, encodings=EVERY_FORMAT, keep_metadata=True)
    for key, data in derivatives(path, config).items():
        image = opened(data)
        exif = image.getexif()
        # AVIF stores orientation as an image property; Pillow drops a tag of 1 there
        assert exif.get(ORIENTATION, 1) == 1, key
        assert exif[MAKE] == CAMERA, key
        assert exif.get_ifd(GPS_IFD)[GPS_LATITUDE] == (51.0, 30.0, 0.0), key
        assert MAKER_NOTE not in exif.get_ifd(EXIF_IFD), key
        assert b'tiff:Orientation="1"' in image.info["xmp"], key
        assert "icc_profile" not in image.info, key  # colour is converted unless kept
        if key[0] == "fitted":  # upright pixels: a viewer applying the kept EXIF shows them so
            red_corner = image.convert("RGB").getpixel((3, 3))
            assert red_corner[0] > 180 > max(red_corner[1:]), (key, red_corner)


def test_kept_colour_profile_is_embedded_in_every_format(tmp_path):
    path = phone_photo(tmp_path / "phone.jpg")
    config = PipelineConfig(sizes=EVERY_MODE, encodings=EVERY_FORMAT, colour="keep")
    for key, data in derivatives(path, config).items():
        image = opened(data)
        assert image.info.get("icc_profile") == SRGB_PROFILE, key
        assert "exif" not in image.info, key


def test_a_tiff_directory_is_not_copied_as_exif(tmp_path):
    """A TIFF's tags describe its own strips and bit depths, not the photo."""
    path = tmp_path / "scan.tif"
    photo_like(200, 150, seed=4).save(path, compression="tiff_lzw")
    config = PipelineConfig(keep_metadata=True)
    for key, data in derivatives(path, config).items():
        assert "exif" not in opened(data).info, key


# Pillow reports a corrupt EXIF block as a UserWarning; pytest's "error" filter would make that an
# exception, where a worker prints it once and carries on, as this test means to show.
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
def test_a_corrupt_exif_block_costs_the_metadata_not_the_image(tmp_path):
    path = tmp_path / "odd.jpg"
    photo_like(200, 150, seed=4).save(path, exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff")
    config = PipelineConfig(keep_metadata=True)
    for key, data in derivatives(path, config).items():
        assert opened(data).size[0] > 0, key
