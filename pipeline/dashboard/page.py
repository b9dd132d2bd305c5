"""The batch board's pages on the Dask dashboard: an HTML table that refreshes itself, and the
same as JSON. Runs in the scheduler (tornado handlers on its dashboard server).

Plain HTML with a meta refresh, no script: it shows in any browser, behind any proxy, and a
test can read it as text.
"""

from __future__ import annotations

import html
import json
import time
from typing import TYPE_CHECKING, Any

from tornado.web import RequestHandler

if TYPE_CHECKING:
    from pipeline.dashboard.board import BatchBoard, BoardEntry

REFRESH_S = 2
COLOURS = {"ok": "#2e7d32", "duplicate": "#1565c0", "failed": "#c62828", "cancelled": "#757575"}
STATE_COLOURS = {"running": "#1565c0", "done": "#2e7d32", "cancelled": "#757575"}

STYLE = """
body { font-family: sans-serif; font-size: 14px; margin: 16px; color: #222 }
h1 { font-size: 20px; margin: 0 0 4px }
p { margin: 4px 0 12px; color: #555 }
table { border-collapse: collapse }
th, td { padding: 4px 10px; border-bottom: 1px solid #e3e3e3; text-align: right;
         white-space: nowrap }
th { background: #f5f5f5; font-weight: 600 }
td.text, th.text { text-align: left }
.bar { display: flex; width: 180px; height: 12px; background: #e0e0e0; border-radius: 3px;
       overflow: hidden }
.output { max-width: 320px; overflow: hidden; text-overflow: ellipsis }
"""


class BatchesPage(RequestHandler):
    def initialize(self, board: BatchBoard) -> None:
        self.board = board

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.write(render_page(self.board.listed(), now=time.time()))


class BatchesJson(RequestHandler):
    def initialize(self, board: BatchBoard) -> None:
        self.board = board

    def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        batches = [
            {**entry, "done": _done(entry), "driver_connected": connected}
            for entry, connected in self.board.listed()
        ]
        self.write(json.dumps({"batches": batches}))


def _done(entry: BoardEntry) -> int:
    return entry["ok"] + entry["duplicate"] + entry["failed"] + entry["cancelled"]


def render_page(listed: list[tuple[BoardEntry, bool]], now: float) -> str:
    running = sum(1 for entry, _ in listed if entry["state"] == "running")
    rows = "".join(_row(entry, connected, now) for entry, connected in listed)
    if not rows:
        rows = '<tr><td class="text" colspan="13">No thumbflow batch has run here yet.</td></tr>'
    headings = "".join(
        f'<th class="{"text" if text else ""}">{name}</th>'
        for name, text in [
            ("batch", True), ("state", True), ("progress", True), ("done / total", False),
            ("ok", False), ("duplicate", False), ("failed", False), ("cancelled", False),
            ("reused", False), ("images/s", False), ("elapsed", False),
            ("last report", False), ("host", True), ("output", True),
        ]
    )  # fmt: skip
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<meta http-equiv='refresh' content='{REFRESH_S}'>"
        f"<title>thumbflow batches</title><style>{STYLE}</style></head><body>"
        "<h1>thumbflow batches</h1>"
        f"<p>{running} running, {len(listed) - running} finished (the latest kept). Each "
        "batch's driver reports its counts here while it runs; the Progress panel of "
        "<a href='../status'>Status</a> shows only the tasks in flight. "
        f"Refreshes every {REFRESH_S} s · <a href='batches.json'>JSON</a></p>"
        f"<table><thead><tr>{headings}</tr></thead><tbody>{rows}</tbody></table>"
        "</body></html>"
    )


def _row(entry: BoardEntry, connected: bool, now: float) -> str:
    state = entry["state"]
    done = _done(entry)
    total = entry["total"]
    counts = {
        "ok": entry["ok"],
        "duplicate": entry["duplicate"],
        "failed": entry["failed"],
        "cancelled": entry["cancelled"],
    }
    segments = "".join(
        f'<div title="{name} {count}" style="width:{100 * count / total:.2f}%;'
        f'background:{COLOURS[name]}"></div>'
        for name, count in counts.items()
        if total and count
    )
    shown_state = state
    if state == "running" and not connected:
        shown_state = "running · driver disconnected"
    cells: list[tuple[Any, bool]] = [
        (f"<code>{html.escape(entry['batch_id'])}</code>", True),
        (
            f'<b style="color:{STATE_COLOURS.get(state, "#c62828")}">'
            f"{html.escape(shown_state)}</b>",
            True,
        ),
        (f'<div class="bar">{segments}</div>', True),
        (f"{done} / {total}", False),
        (entry["ok"], False),
        (entry["duplicate"], False),
        (entry["failed"], False),
        (entry["cancelled"], False),
        (entry["reused"], False),
        (f"{entry['images_per_s']:.1f}", False),
        (f"{entry['elapsed_s']:.1f} s", False),
        (f"{max(0.0, now - entry['updated']):.0f} s ago", False),
        (html.escape(f"{entry['host']}"), True),
        (
            f'<div class="output" title="{html.escape(entry["output"])}">'
            f"{html.escape(entry['output'])}</div>",
            True,
        ),
    ]
    tds = "".join(f'<td class="{"text" if text else ""}">{value}</td>' for value, text in cells)
    return (
        f'<tr class="batch" data-batch="{html.escape(entry["batch_id"])}" '
        f'data-state="{html.escape(state)}">{tds}</tr>'
    )
