"""Photo-like sample images for the demo and the tests, made with Pillow alone. Runs in the
process that asks for them (the CLI's demo, a test, a notebook).

Each sample has smooth gradients, shapes and sensor-like noise (so encoders see realistic
content, not flat colour), and the set covers what real batches hold: landscape and portrait
photos, one rotated by EXIF as phones write them, a PNG with transparency, a byte-identical
copy, a truncated download and a text file with an image name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter


@dataclass(frozen=True)
class SampleSet:
    folder: Path
    images: list[Path]
    duplicates: list[Path]
    broken: list[Path]


def _noise(width: int, height: int, seed: int) -> Image.Image:
    """Sensor-like grain: one 256 px tile of Gaussian noise repeated (cheaper than 12 MP of it)."""
    tile = Image.effect_noise((256, 256), 12 + seed % 5).convert("RGB")
    noise = Image.new("RGB", (width, height))
    for top in range(0, height, 256):
        for left in range(0, width, 256):
            noise.paste(tile, (left, top))
    return noise


def photo_like(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """A deterministic image with sky-like gradients, blurred shapes and fine noise.

    Shapes are drawn at a quarter of the size and enlarged (soft edges, like optics give),
    which keeps a 12 MP sample under a quarter of a second to make."""
    final_size = (width, height)
    width, height = max(8, width // 4), max(8, height // 4)
    rng = random.Random(seed)
    top = tuple(rng.randrange(40, 220) for _ in range(3))
    bottom = tuple(rng.randrange(20, 200) for _ in range(3))
    gradient = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(
        Image.new("RGB", (width, height), top), Image.new("RGB", (width, height), bottom), gradient
    )
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = rng.randrange(width), rng.randrange(height)
        radius = rng.randrange(max(2, min(width, height) // 20), max(3, min(width, height) // 4))
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour)
        else:
            draw.rectangle((x - radius, y - radius // 2, x + radius, y + radius // 2), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1)).resize(final_size, Image.Resampling.BILINEAR)
    width, height = final_size
    image = Image.blend(image, _noise(width, height, seed), 0.06)
    if mode == "RGBA":
        alpha = Image.new("L", (width, height), 0)
        ImageDraw.Draw(alpha).ellipse(
            (width // 10, height // 10, width * 9 // 10, height * 9 // 10), fill=255
        )
        image.putalpha(alpha)
    return image


def _save_jpeg(image: Image.Image, path: Path, orientation: int = 1) -> None:
    exif = Image.Exif()
    exif[0x0110] = "thumbflow sample camera"
    if orientation != 1:
        exif[0x0112] = orientation
    image.save(path, "JPEG", quality=90, exif=exif.tobytes())


def write_samples(folder: str | Path, count: int = 12, seed: int = 7) -> SampleSet:
    """Write ``count`` photo-like images plus a duplicate and two broken files into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    shapes = [(3000, 2000), (2000, 3000), (1600, 1200), (1024, 768), (640, 480), (4000, 3000)]
    images = []
    for number in range(count):
        width, height = shapes[number % len(shapes)]
        path = folder / f"photo_{number:03d}.jpg"
        _save_jpeg(photo_like(width, height, rng.randrange(1 << 30)), path)
        images.append(path)
    # A phone photo stored sideways with EXIF orientation 6: must come out upright (portrait).
    rotated = folder / "phone_rotated.jpg"
    _save_jpeg(photo_like(1600, 1200, seed + 1).transpose(Image.Transpose.ROTATE_90), rotated, 6)
    transparent = folder / "logo_transparent.png"
    photo_like(900, 900, seed + 2, mode="RGBA").save(transparent)
    images += [rotated, transparent]

    duplicate = folder / "photo_000_copy.jpg"
    duplicate.write_bytes(images[0].read_bytes())
    truncated = folder / "truncated_download.jpg"
    truncated.write_bytes(images[1].read_bytes()[: images[1].stat().st_size // 3])
    not_an_image = folder / "notes.jpg"
    not_an_image.write_text("<!doctype html><title>Not found</title>\n")
    return SampleSet(folder, images, [duplicate], [truncated, not_an_image])
