"""The optional peers, each in the style its users write it, with the same outputs.

OpenCV (the img2dataset style): ``imread`` at the ½, ¼ or ⅛ reduced scale that still holds the
largest size, an INTER_AREA cascade large → medium → thumbnail, ``imencode`` at the same
qualities (OpenCV's WebP has no method setting; libwebp's default is method 4, thumbflow's too).
OpenCV ignores embedded colour profiles, as its users get it.

pyvips: ``thumbnail`` (shrink-on-load, auto-rotate) for the largest size, then a
``thumbnail_image`` cascade; JPEG Q85 and WebP Q80 effort 4 with all metadata dropped. A file
with an embedded profile is converted to sRGB, as thumbflow does.

Both libraries run their own thread pools; each worker is held to one thread so every
implementation gets one core per process, like thumbflow's single-threaded workers.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from benchmarks.spec import SIZES, Job, fit, jpeg_quality, webp_settings

# The plain-colour reduced-decode flags by scale; 1 is a full decode.
_REDUCED = {8: "IMREAD_REDUCED_COLOR_8", 4: "IMREAD_REDUCED_COLOR_4", 2: "IMREAD_REDUCED_COLOR_2"}


def missing(module: str) -> str | None:
    """Why the peer cannot run here, or None when it can."""
    try:
        __import__(module)
    except ImportError as error:
        return f"{module} is not importable ({error}); install the `bench` extra"
    return None


def _displayed_size(source: str) -> tuple[int, int]:
    """From the header only (a few hundred µs): both peers need it to plan their decode."""
    with Image.open(source) as image:
        width, height = image.size
        if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            return height, width
        return width, height


def _sizes_largest_first(width: int, height: int) -> list[tuple[str, tuple[int, int]]]:
    planned = [(size.name, fit(width, height, size)) for size in SIZES]
    return sorted(planned, key=lambda item: item[1], reverse=True)


def prepare_opencv() -> None:
    import cv2

    cv2.setNumThreads(1)


def opencv(job: Job) -> int:
    import cv2

    width, height = _displayed_size(job.source)
    planned = _sizes_largest_first(width, height)
    largest = planned[0][1]
    flag = cv2.IMREAD_COLOR
    for scale, name in _REDUCED.items():
        # libjpeg rounds a reduced side up; the reduced image must still cover the largest size.
        if -(-width // scale) >= largest[0] and -(-height // scale) >= largest[1]:
            flag = getattr(cv2, name)
            break
    image: Any = cv2.imread(job.source, flag)  # applies EXIF orientation
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality()]
    webp = [cv2.IMWRITE_WEBP_QUALITY, webp_settings()[0]]
    for name, (target_width, target_height) in planned:
        if (image.shape[1], image.shape[0]) != (target_width, target_height):
            image = cv2.resize(image, (target_width, target_height), interpolation=cv2.INTER_AREA)
        for extension, params in (("jpg", jpeg), ("webp", webp)):
            ok, encoded = cv2.imencode(f".{extension}", image, params)
            if not ok:
                raise RuntimeError(f"{job.source}: OpenCV could not encode {name}.{extension}")
            job.write(name, extension, encoded.tobytes())
    return 2 * len(planned)


def prepare_pyvips() -> None:
    import pyvips

    pyvips.concurrency_set(1)
    # Every file is read once: the operation cache would only hold memory.
    pyvips.cache_set_max(0)


def pyvips_style(job: Job) -> int:
    import pyvips

    planned = _sizes_largest_first(*_displayed_size(job.source))
    has_profile = pyvips.Image.new_from_file(job.source).get_typeof("icc-profile-data") != 0
    profile = {"export_profile": "srgb"} if has_profile else {}
    quality, effort = webp_settings()
    image: Any = None
    for name, (target_width, target_height) in planned:
        if image is None:
            image = pyvips.Image.thumbnail(
                job.source, target_width, height=target_height, size="down", **profile
            )
        elif (image.width, image.height) != (target_width, target_height):
            image = image.thumbnail_image(target_width, height=target_height, size="down")
        # Rendered once into memory: the pipeline reads the file sequentially, so a second
        # save would fail, and the next size should start from these pixels, not recompute them.
        image = image.copy_memory()
        job.write(name, "jpg", image.jpegsave_buffer(Q=jpeg_quality(), keep="none"))
        job.write(name, "webp", image.webpsave_buffer(Q=quality, effort=effort, keep="none"))
    return 2 * len(planned)
