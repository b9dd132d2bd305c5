"""The size an AVIF or HEIF file claims for its images, read from its ``ispe`` boxes without
libavif. Runs on the workers (through ``stages.validate``); knows no Dask, callable anywhere.

libavif refuses an image over its own size limit with nothing but "BMFF parsing failed", the
words it uses for a damaged file too; the claimed size tells the two apart. The boxes are read
from the first MiB only: ``meta``, which holds them, comes before the pixel data in practice.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

_READ_AT_MOST = 1 << 20
# The boxes on the way to ``ispe`` (meta → iprp → ipco), with the bytes each has before its
# children: ``meta`` is a "full box" (version and flags).
_CONTAINERS = {b"meta": 4, b"iprp": 0, b"ipco": 0}
_MAX_DEPTH = 4


def _boxes(data: bytes, start: int, end: int, depth: int) -> Iterator[tuple[int, int]]:
    """Every (width, height) an ``ispe`` box in ``data[start:end]`` claims."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1 and position + 16 <= end:  # a 64-bit size follows the type
            size, header = struct.unpack_from(">Q", data, position + 8)[0], 16
        elif size == 0:  # the box runs to the end of the file
            size = end - position
        if size < header:
            return  # damaged: nothing after it can be trusted
        inside = min(position + size, end)
        if kind == b"ispe" and inside - position >= header + 12:
            yield struct.unpack_from(">II", data, position + header + 4)  # after version, flags
        elif kind in _CONTAINERS and depth < _MAX_DEPTH:
            yield from _boxes(data, position + header + _CONTAINERS[kind], inside, depth + 1)
        position += size


def claimed_size(stream: BinaryIO) -> tuple[int, int] | None:
    """The largest image size the file's ``ispe`` boxes claim (the primary image's, or the grid
    it is tiled from), or None if it has none in its first MiB."""
    stream.seek(0)
    data = stream.read(_READ_AT_MOST)
    claims = list(_boxes(data, 0, len(data), 0))
    if not claims:
        return None
    return max(claims, key=lambda size: size[0] * size[1])
