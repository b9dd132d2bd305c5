"""Real files in formats thumbflow does not read by default, and non-image files that look like
images: written by Pillow where it can write the format, built byte by byte where it can only
read it (PSD, XPM, Sun raster), or with the standard library (WAV). Shared by the failure-label
tests and the stage tests."""

from __future__ import annotations

import io
import struct
import wave

from PIL import Image

from pipeline.samples import photo_like

WIDTH, HEIGHT = 96, 64


def picture(mode: str = "RGB") -> Image.Image:
    return photo_like(WIDTH, HEIGHT, seed=7).convert(mode)


def saved(format_name: str, mode: str = "RGB", **options: object) -> bytes:
    """``picture()`` written by Pillow's own encoder for ``format_name``."""
    buffer = io.BytesIO()
    picture(mode).save(buffer, format_name, **options)
    return buffer.getvalue()


def psd_bytes(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A flattened 8-bit RGB Photoshop file: header, three empty sections, raw planar pixels."""
    image = picture()
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layers
    planes = b"".join(band.tobytes() for band in image.resize((width, height)).split())
    return header + sections + struct.pack(">H", 0) + planes  # compression 0: raw


def xpm_bytes(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """An X11 pixmap (C source) of two colours in a checkerboard."""
    rows = ["".join("ab"[(x // 8 + y // 8) % 2] for x in range(width)) for y in range(height)]
    lines = [f'"{width} {height} 2 1"', '"a c #C03020"', '"b c #2040B0"']
    lines += [f'"{row}"' for row in rows]
    return ("/* XPM */\nstatic char *picture[] = {\n" + ",\n".join(lines) + "\n};\n").encode()


def sun_raster_bytes(width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A 24-bit standard Sun raster: a 32-byte header, then BGR rows padded to 16 bits."""
    image = picture().resize((width, height))
    red, green, blue = image.split()
    bgr = Image.merge("RGB", (blue, green, red)).tobytes()
    row = width * 3
    padding = b"\0" * (row % 2)
    data = b"".join(bgr[y * row : (y + 1) * row] + padding for y in range(height))
    header = struct.pack(">8I", 0x59A66A95, width, height, 24, len(data), 1, 0, 0)
    return header + data


def wav_bytes() -> bytes:
    """A tenth of a second of silence: a RIFF file of form WAVE."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(1600))
    return buffer.getvalue()


def cut_avi_bytes() -> bytes:
    """The start of an AVI (RIFF form "AVI ") whose header declares 64 KiB: a partial download."""
    avih = b"avih" + struct.pack("<I", 56) + bytes(56)
    hdrl = b"LIST" + struct.pack("<I", 4 + len(avih)) + b"hdrl" + avih
    return b"RIFF" + struct.pack("<I", 65536) + b"AVI " + hdrl


def avif_claiming(width: int, height: int) -> bytes:
    """A small real AVIF whose ``ispe`` box is patched to claim ``width`` x ``height``: what
    libavif sees in the header of an AVIF that large, without encoding one."""
    data = bytearray(saved("AVIF", quality=50))
    at = data.find(b"ispe")
    assert at > 0, "Pillow's AVIF has no ispe box"
    struct.pack_into(">II", data, at + 8, width, height)  # after the type, version and flags
    return bytes(data)


def corrupt_exif_jpeg() -> bytes:
    """A JPEG whose EXIF names a Make tag stored past the end of the EXIF block: Pillow reads
    the orientation and warns "Tag data larger than file"."""
    make = struct.pack("<HHII", 0x010F, 2, 100, 0x4000)  # ASCII, 100 bytes, at 16 KiB
    orientation = struct.pack("<HHIHH", 0x0112, 3, 1, 1, 0)
    tiff = b"II*\x00" + struct.pack("<IH", 8, 2) + make + orientation + bytes(4)
    return saved("JPEG", exif=b"Exif\x00\x00" + tiff)


# Each format thumbflow can be allowed to read, as a real file: (Pillow format, file name,
# bytes). Pillow writes all but PSD, XPM and SUN.
def extra_format_files() -> list[tuple[str, str, bytes]]:
    return [
        ("TGA", "targa.tga", saved("TGA")),
        ("PPM", "pixmap.ppm", saved("PPM")),
        ("PPM", "greymap.pgm", saved("PPM", "L")),
        ("PCX", "paint.pcx", saved("PCX")),
        ("SGI", "iris.sgi", saved("SGI")),
        ("QOI", "quite_ok.qoi", saved("QOI")),
        ("DDS", "texture.dds", saved("DDS")),
        ("ICNS", "app.icns", saved("ICNS")),
        ("ICO", "favicon.ico", saved("ICO", sizes=[(64, 64)])),
        ("JPEG2000", "scan.jp2", saved("JPEG2000")),
        ("XBM", "bitmap.xbm", saved("XBM", "1")),
        ("PSD", "layers.psd", psd_bytes()),
        ("XPM", "pixmap.xpm", xpm_bytes()),
        ("SUN", "raster.ras", sun_raster_bytes()),
    ]
