"""A config that asks for a format this Pillow cannot write is refused when it is made, with a
``ConfigError`` that says what to install, instead of a batch of ``encode_error`` rows."""

from __future__ import annotations

import sys

import pytest
from PIL import features

from pipeline.config import Encoding, PipelineConfig
from pipeline.errors import ConfigError


def test_avif_without_the_codec_is_refused_with_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert features.check("avif")  # the Pillow under test has it (pillow>=11.3 wheels do)
    Encoding(format="avif", quality=60)
    # A Pillow without libavif is one whose AVIF extension module cannot be imported.
    monkeypatch.setitem(sys.modules, "PIL._avif", None)
    assert not features.check("avif")
    with pytest.raises(ConfigError, match=r"avif: this Pillow \(.+\) was built without AVIF"):
        Encoding.parse("avif:50")
    with pytest.raises(ConfigError, match=r"install pillow>=11\.3"):
        PipelineConfig(encodings=(Encoding(format="avif", quality=60),))
    Encoding.parse("webp")  # the other formats do not need it
    PipelineConfig()
