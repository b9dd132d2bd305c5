"""What a batch produces and the limits it enforces, validated once at construction. Built in
the user's process, read everywhere: it travels inside every task.

A ``PipelineConfig`` is frozen and small: it travels inside every task of a batch. Each output
it produces is named by an *output fingerprint* of exactly what shapes that file's bytes
(``output_name``), so two settings never write the same path, and its ``fingerprint`` names the
whole set (the record of what a batch made for one image, see ``pipeline.storage``).

======================  ============================================  =========================
field                   meaning                                       default
======================  ============================================  =========================
``sizes``               named boxes, each with a resize mode          thumbnail, medium, large
``encodings``           output formats and their encoder settings     JPEG q85, WebP q80
``colour``              ``"srgb"``: convert embedded ICC profiles;    ``"srgb"``
                        ``"keep"``: keep the source's profile
``keep_metadata``       copy EXIF (orientation reset to 1) and XMP    ``False`` (strip all)
``background``          colour behind alpha in JPEG and ``pad``       white
``max_file_bytes``      refuse inputs larger than this                256 MiB
``max_pixels``          refuse headers claiming more pixels           300 MP
``max_decoded_pixels``  refuse what would decode to more pixels       100 MP
``max_frames``          refuse animations with more frames            1000
``accept_truncated``    derivatives from files that end early         ``False`` (refuse)
``allow_formats``       formats read besides JPEG, PNG, GIF, WebP,    none
                        TIFF, BMP, AVIF (``EXTRA_FORMATS``)
``fetch``               how workers fetch ``http(s)://`` sources:     ``FetchSettings()``
                        timeouts, retries, redirects
======================  ============================================  =========================

Every limit is checked from the file's size or header, before any pixel is decoded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Literal, get_args

import PIL
from PIL import features

from pipeline.errors import ConfigError

ResizeMode = Literal["fit", "cover", "pad"]
FormatName = Literal["jpeg", "webp", "avif"]
ColourHandling = Literal["srgb", "keep"]

FILE_EXTENSIONS: dict[FormatName, str] = {"jpeg": "jpg", "webp": "webp", "avif": "avif"}
_SIZE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, kw_only=True)
class Size:
    """A named box. ``fit`` keeps the whole image inside it, ``cover`` fills it and crops the
    overflow from the centre, ``pad`` fits and then pads to exactly the box with the background.
    """

    name: str
    width: int
    height: int
    mode: ResizeMode = "fit"

    def __post_init__(self) -> None:
        if not _SIZE_NAME.match(self.name):
            raise ConfigError(
                f"size name {self.name!r}: use 1-32 lower-case letters, digits, '-' or '_'"
            )
        if not (1 <= self.width <= 16384 and 1 <= self.height <= 16384):
            raise ConfigError(f"size {self.name!r}: {self.width}x{self.height} is not 1..16384")
        if self.mode not in get_args(ResizeMode):
            raise ConfigError(f"size {self.name!r}: mode must be one of {get_args(ResizeMode)}")

    @classmethod
    def parse(cls, text: str) -> Size:
        """``"thumb=150x150"`` or ``"avatar=256x256:cover"``."""
        match = re.fullmatch(r"([^=]+)=(\d+)x(\d+)(?::(\w+))?", text.strip())
        if not match:
            raise ConfigError(f"size {text!r}: expected NAME=WIDTHxHEIGHT[:fit|cover|pad]")
        name, width, height, mode = match.groups()
        return cls(name=name, width=int(width), height=int(height), mode=mode or "fit")  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Encoding:
    """One output format with its encoder settings.

    The speed knobs trade CPU for bytes: WebP ``method`` 0 (fast) .. 6 (small), AVIF
    ``speed`` 0 (slow, small) .. 10 (fast); JPEG ``progressive``/``optimize`` save a few percent.
    """

    format: FormatName
    quality: int
    webp_method: int = 4
    avif_speed: int = 8
    jpeg_progressive: bool = False
    jpeg_optimize: bool = False

    def __post_init__(self) -> None:
        if self.format not in get_args(FormatName):
            raise ConfigError(f"format {self.format!r}: must be one of {get_args(FormatName)}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"{self.format} quality {self.quality}: must be 1..100")
        if not 0 <= self.webp_method <= 6:
            raise ConfigError(f"webp method {self.webp_method}: must be 0..6")
        if not 0 <= self.avif_speed <= 10:
            raise ConfigError(f"avif speed {self.avif_speed}: must be 0..10")
        if self.format == "avif" and not features.check("avif"):
            # A Pillow wheel before 11.3, or one built from source without libavif, has no
            # AVIF codec: say so now rather than fail every image's encode.
            raise ConfigError(
                f"format avif: this Pillow ({PIL.__version__}) was built without AVIF; "
                "install pillow>=11.3 from PyPI (its wheels include libavif), or choose jpeg or "
                "webp"
            )

    @property
    def extension(self) -> str:
        return FILE_EXTENSIONS[self.format]

    @property
    def knobs(self) -> dict[str, int | bool]:
        """The settings this format's encoder reads, and only those: a WebP or AVIF setting
        does not make another JPEG."""
        if self.format == "jpeg":
            return {
                "quality": self.quality,
                "progressive": self.jpeg_progressive,
                "optimize": self.jpeg_optimize,
            }
        if self.format == "webp":
            return {"quality": self.quality, "method": self.webp_method}
        if self.format == "avif":
            return {"quality": self.quality, "speed": self.avif_speed}
        raise AssertionError(f"unknown format {self.format!r}")

    @classmethod
    def parse(cls, text: str) -> Encoding:
        """``"webp"``, ``"webp:75"`` or ``"jpg:90"``."""
        name, _, quality = text.strip().lower().partition(":")
        name = "jpeg" if name == "jpg" else name
        if name not in DEFAULT_QUALITY:
            raise ConfigError(f"format {text!r}: expected jpeg, webp or avif, optionally :QUALITY")
        if quality and not (quality.isascii() and quality.isdigit()):
            raise ConfigError(f"format {text!r}: quality must be a whole number")
        return cls(format=name, quality=int(quality) if quality else DEFAULT_QUALITY[name])  # type: ignore[arg-type]


# Formats a batch may add to the ones always read: each is decoded by Pillow itself and tested
# on a real file. Not offered although Pillow opens them: EPS (Pillow hands it to Ghostscript,
# a program with a long record of exploits through crafted files), WMF/EMF (only Windows renders
# them), the BUFR, GRIB and HDF5 stubs and MPEG (identified, never decoded).
EXTRA_FORMATS = (
    "DDS", "ICNS", "ICO", "JPEG2000", "PCX", "PPM", "PSD", "QOI", "SGI", "SUN", "TGA", "XBM", "XPM",
)  # fmt: skip
ALWAYS_READ = ("JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "AVIF", "HEIF", "MPO")
# Other names people use for them: Pillow reads PGM, PBM, PNM and PFM as "PPM".
_FORMAT_ALIASES = {
    "JP2": "JPEG2000", "J2K": "JPEG2000", "JPEG-2000": "JPEG2000", "JPX": "JPEG2000",
    "PGM": "PPM", "PBM": "PPM", "PNM": "PPM", "PFM": "PPM",
    "TARGA": "TGA", "RAS": "SUN", "SUNRASTER": "SUN",
}  # fmt: skip


def allowed_format(name: str) -> str | None:
    """Pillow's name of an extra format (``"tga"`` → ``"TGA"``), None for one always read;
    ``ConfigError`` for any other name."""
    key = str(name).strip().upper()
    key = _FORMAT_ALIASES.get(key, key)
    if key in ALWAYS_READ or key == "JPG":
        return None
    if key not in EXTRA_FORMATS:
        raise ConfigError(
            f"cannot allow format {name!r}: the formats thumbflow can add are "
            f"{', '.join(EXTRA_FORMATS)}"
        )
    return key


DEFAULT_QUALITY: dict[str, int] = {"jpeg": 85, "webp": 80, "avif": 60}
DEFAULT_SIZES = (
    Size(name="thumbnail", width=150, height=150),
    Size(name="medium", width=800, height=600),
    Size(name="large", width=1920, height=1080),
)
DEFAULT_ENCODINGS = (Encoding(format="jpeg", quality=85), Encoding(format="webp", quality=80))


@dataclass(frozen=True, kw_only=True)
class FetchSettings:
    """How a worker fetches an ``http(s)://`` source (``pipeline.stages.http_fetch``); the size
    limit is the config's ``max_file_bytes``.

    ``timeout_s`` bounds the connection and every wait for more bytes (a stalled server),
    ``deadline_s`` one whole attempt (a server that drips a byte at a time). Transient answers
    (a reset connection, 429, 5xx, a body cut short) are tried again up to ``retries`` times,
    after ``backoff_s`` doubling each time, or after the server's ``Retry-After`` if it asks,
    never longer than ``retry_after_max_s``. Timeouts are not retried: a stalled server would
    otherwise hold a worker for several timeouts. A worker fetches up to ``concurrency`` URLs
    of a chunk at once, so the network's latency overlaps instead of adding up."""

    timeout_s: float = 30.0
    deadline_s: float = 300.0
    retries: int = 3
    backoff_s: float = 0.5
    retry_after_max_s: float = 30.0
    max_redirects: int = 5
    concurrency: int = 16

    def __post_init__(self) -> None:
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int):
            raise ConfigError(f"fetch concurrency {self.concurrency!r}: must be 1..64")
        if not 1 <= self.concurrency <= 64:
            raise ConfigError(f"fetch concurrency {self.concurrency!r}: must be 1..64")
        for name in ("timeout_s", "deadline_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"fetch {name} {value!r}: must be a positive number of seconds")
        for name in ("backoff_s", "retry_after_max_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"fetch {name} {value!r}: must be 0 or more seconds")
        for name in ("retries", "max_redirects"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 20:
                raise ConfigError(f"fetch {name} {value!r}: must be a whole number 0..20")


# Bump when thumbflow changes how pixels or encoded bytes come out of equal settings (another
# resampling filter, colour conversion or cascade): every output then gets a new name, and
# nothing made before is taken for what the new code would make.
RENDER_VERSION = 2  # 2: cover keeps the box's shape for small sources, pad pads alpha clear
# Hex digits of the output fingerprint in a file name: 48 bits. Even a thousand settings used
# on one output root give two of them the same file name with odds below 1 in 500 million.
OUTPUT_NAME_HEX = 12


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything that decides a batch's outputs and what it refuses (table in the module doc)."""

    sizes: tuple[Size, ...] = DEFAULT_SIZES
    encodings: tuple[Encoding, ...] = DEFAULT_ENCODINGS
    colour: ColourHandling = "srgb"
    keep_metadata: bool = False
    background: tuple[int, int, int] = (255, 255, 255)
    max_file_bytes: int = 256 * 1024 * 1024
    # Two pixel limits, both read from the header before any decoding. ``max_pixels`` bounds
    # the *work*: libjpeg entropy-decodes every block even at 1/8 scale, so time follows the
    # full size; 300 MP admits today's 200 MP phone sensors, and a header claiming 10 GP is
    # refused in microseconds. ``max_decoded_pixels`` bounds the
    # *memory*: what decoding allocates after the reduced-scale decode. That same 200 MP
    # baseline JPEG decodes at 1/8 to 3 MP (~30 MB), while a PNG, TIFF, WebP, AVIF or
    # progressive JPEG (libjpeg keeps every coefficient, ~3 bytes a pixel) needs its full size
    # at ~4 bytes a pixel: 100 MP peaks at ~0.5 GB per worker (measured), which fits the
    # 2 GB a LocalCluster gives each worker on an 8 GB, 4-core laptop.
    max_pixels: int = 300_000_000
    max_decoded_pixels: int = 100_000_000
    # Only the first frame is decoded, so frames cost nothing but the counting; a file whose
    # frame count is the attack (millions of 15-byte GIF frames) is refused at the limit.
    max_frames: int = 1000
    accept_truncated: bool = False
    # Not in any fingerprint, like the limits: allowing a format decides whether a file of that
    # format gets derivatives, never what they hold. The always-read formats are tried first
    # (``stages.opening.accepted_formats``), so a file one of them reads is read the same way
    # whatever else is allowed, and a TGA gives the same bytes in every batch that allows it.
    allow_formats: tuple[str, ...] = ()
    # Not in any fingerprint either: how a URL's bytes arrive never changes what they are.
    fetch: FetchSettings = FetchSettings()

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ConfigError("at least one size is needed")
        if not self.encodings:
            raise ConfigError("at least one output format is needed")
        for kind, names in (
            ("size", [s.name for s in self.sizes]),
            ("format", [e.format for e in self.encodings]),
        ):
            if len(set(names)) != len(names):
                raise ConfigError(f"each {kind} may appear once, got {names}")
        for limit in ("max_file_bytes", "max_pixels", "max_decoded_pixels", "max_frames"):
            value = getattr(self, limit)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{limit} {value!r}: must be a positive whole number")
        if self.colour not in get_args(ColourHandling):
            raise ConfigError(f"colour {self.colour!r}: must be one of {get_args(ColourHandling)}")
        for flag in ("keep_metadata", "accept_truncated"):
            if not isinstance(getattr(self, flag), bool):
                raise ConfigError(f"{flag} must be True or False")
        if isinstance(self.allow_formats, str):
            raise ConfigError("allow_formats: a tuple of format names, e.g. ('TGA', 'PPM')")
        extra = {allowed_format(name) for name in self.allow_formats} - {None}
        # Normalised here, so equal settings make equal (and equally cached) configs.
        object.__setattr__(self, "allow_formats", tuple(sorted(name for name in extra if name)))
        if not isinstance(self.fetch, FetchSettings):
            raise ConfigError("fetch: a FetchSettings, e.g. FetchSettings(timeout_s=10)")
        if len(self.background) != 3 or not all(0 <= c <= 255 for c in self.background):
            raise ConfigError(f"background {self.background}: expected three values 0..255")

    def output_fingerprint(self, size: Size, encoding: Encoding) -> str:
        """Names one derivative by what shapes its bytes, and nothing else.

        - Every size's box and mode, not only its own: the decode scale follows the largest
          size, and each size is resized from the next larger one (``stages.resize``).
        - Its own format's encoder knobs only (``Encoding.knobs``).
        - The background only where it shows: JPEG flattens alpha onto it, ``pad`` fills with it.
        - ``colour`` and ``keep_metadata``: the pixels' profile and what the file carries.
        - ``RENDER_VERSION``, for changes in thumbflow itself.

        Size names are not in it (they are in the file name), nor are the limits,
        ``accept_truncated`` or ``allow_formats``: they decide whether an image gets
        derivatives, not what they hold.
        A record says which policy made an output (``pipeline.storage``)."""
        shaping: dict[str, object] = {
            "render": RENDER_VERSION,
            "box": [size.width, size.height, size.mode],
            "boxes": sorted([s.width, s.height, s.mode] for s in self.sizes),
            "format": encoding.format,
            "knobs": encoding.knobs,
            "colour": self.colour,
            "keep_metadata": self.keep_metadata,
        }
        if encoding.format == "jpeg" or size.mode == "pad":
            shaping["background"] = list(self.background)
        encoded = json.dumps(shaping, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()

    def output_name(self, size: Size, encoding: Encoding) -> str:
        """The file name of one derivative: ``thumbnail-3f9a1c2b4d5e.jpg``."""
        return _output_name(self, size, encoding)

    @property
    def fingerprint(self) -> str:
        """Names the set of derivatives this config produces: equal fingerprints, identical
        outputs. Made of the outputs' names, so it ignores what they ignore."""
        names = [
            self.output_name(size, encoding) for size in self.sizes for encoding in self.encodings
        ]
        return hashlib.sha256(json.dumps(names).encode()).hexdigest()[:16]


# Asked for every derivative of every image (~0.1 ms each to compute); a worker sees few configs.
@functools.lru_cache(maxsize=256)
def _output_name(config: PipelineConfig, size: Size, encoding: Encoding) -> str:
    fingerprint = config.output_fingerprint(size, encoding)[:OUTPUT_NAME_HEX]
    return f"{size.name}-{fingerprint}.{encoding.extension}"
