"""The ``thumbflow`` and ``dask`` commands as the tests start them: those of the interpreter
running the tests, importing the ``pipeline`` package under test.

Neither PATH nor the working directory may decide which program runs: a venv's ``bin`` need not
be on PATH (an IDE, ``/path/to/venv/bin/python -m pytest``), and ``python -m …`` puts its
working directory first on ``sys.path``, so a command started in a checkout's root would import
that checkout's ``pipeline`` instead of the one being tested.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pipeline

# The folder holding the ``pipeline`` package this test run imports.
PACKAGE_ROOT = Path(pipeline.__file__).resolve().parent.parent


def interpreter_command(script: str, module: str) -> list[str]:
    """The console script installed beside this interpreter, else ``python -m module``."""
    installed = Path(sys.executable).parent / script
    if installed.is_file() and os.access(installed, os.X_OK):
        return [str(installed)]
    return [sys.executable, "-m", module]


THUMBFLOW = interpreter_command("thumbflow", "pipeline.cli")
DASK = interpreter_command("dask", "dask")

# A working directory holding no Python package, for commands whose imports must not depend on
# where the tests were started.
NEUTRAL_CWD = tempfile.gettempdir()


def command_env(overrides: dict[str, str] | None = None) -> dict[str, str]:
    """This environment plus ``overrides``, with the package under test importable: an override's
    PYTHONPATH (a test's stand-in ``pipeline``) still comes first."""
    env = {**os.environ, **(overrides or {})}
    inherited = os.environ.get("PYTHONPATH", "")
    given = (overrides or {}).get("PYTHONPATH", "")
    entries = [given, str(PACKAGE_ROOT), inherited] if given else [str(PACKAGE_ROOT), inherited]
    env["PYTHONPATH"] = os.pathsep.join(entry for entry in entries if entry)
    return env
