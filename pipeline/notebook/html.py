"""What the notebook helpers share: an HTML value with a text form, and the outcome colours.
Runs in the notebook's kernel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Colours per outcome, shared by the progress bar and the gallery's badges.
OUTCOME_COLOURS = {
    "ok": "#2e7d32",
    "duplicate": "#1565c0",
    "failed": "#c62828",
    "cancelled": "#757575",
    "pending": "#e0e0e0",
}


@dataclass(frozen=True, repr=False)
class HtmlFragment:
    """HTML for a notebook, with a one-line text form for consoles and logs.

    Jupyter renders it through ``_repr_html_``; a terminal IPython shows ``text``."""

    html: str
    text: str

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return self.text


def display(view: HtmlFragment, *, display_id: bool = False) -> Any:
    """IPython's ``display``: a ``DisplayHandle`` with ``display_id``, None outside IPython."""
    from IPython.display import display

    return display(view, display_id=display_id)  # type: ignore[no-untyped-call]  # unannotated
