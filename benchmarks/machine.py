"""What the numbers were measured on, printed above every result."""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

import PIL
from PIL import features

import pipeline


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as stream:
            for line in stream:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _libvips() -> str:
    try:
        import pyvips
    except ImportError:
        return "not installed"
    return ".".join(str(pyvips.version(part)) for part in range(3))


def _pipeline_digest() -> str:
    """Which code was measured: the tree may change between runs (and did, during this work),
    so every result names a digest of thumbflow's sources."""
    root = Path(pipeline.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average now (1/5/15 min): {one:.2f} / {five:.2f} / {fifteen:.2f}"


def describe() -> str:
    """A Markdown bullet list: cores, CPU, memory, load, and the versions that set the speed."""
    memory = _memory_bytes()
    lines = [
        f"- cores: {os.cpu_count()} ({_cpu_model()}); memory: "
        + (f"{memory / 2**30:.1f} GiB" if memory else "unknown"),
        f"- {load()} (other work on this shared machine shows here)",
        f"- Python {platform.python_version()} ({sys.implementation.name}), {platform.platform()}",
        f"- Pillow {PIL.__version__} (libjpeg-turbo {features.version('jpg')}, "
        f"libwebp {features.version('webp')}); dask {_version('dask')}, "
        f"distributed {_version('distributed')}, thumbflow {_version('thumbflow')} "
        f"(sources {_pipeline_digest()})",
        f"- peers: opencv-python-headless {_version('opencv-python-headless')}, "
        f"pyvips {_version('pyvips')} (libvips {_libvips()}), psutil {_version('psutil')}",
    ]
    return "\n".join(lines)
