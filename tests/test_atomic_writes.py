"""A reader of the output root sees a file absent, old, or complete: never half of one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from pipeline.storage import OutputRoot, WriteAbandoned
from tests.helpers import leftover_temporaries


def test_an_abandoned_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    root = OutputRoot(str(tmp_path))
    root.write_atomic("ab/file.jpg", b"old content")
    with pytest.raises(WriteAbandoned):
        root.write_atomic("ab/file.jpg", b"new content", still_wanted=lambda: False)
    assert (tmp_path / "ab" / "file.jpg").read_bytes() == b"old content"
    assert leftover_temporaries(tmp_path) == []


def test_a_concurrent_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    root = OutputRoot(str(tmp_path))
    versions = [bytes([n]) * 4_000_000 for n in (1, 2)]
    root.write_atomic("ab/file.jpg", versions[0])
    target = tmp_path / "ab" / "file.jpg"
    seen: set[int] = set()
    torn: list[int] = []
    writing = True

    def read_all_the_time() -> None:
        while writing:
            data = target.read_bytes()
            if data in versions:
                seen.add(data[0])
            else:
                torn.append(len(data))

    reader = threading.Thread(target=read_all_the_time)
    reader.start()
    try:
        for round_ in range(60):
            root.write_atomic("ab/file.jpg", versions[round_ % 2])
    finally:
        writing = False
        reader.join()
    assert torn == []
    assert seen == {1, 2}
