"""The report of ``hotline report`` in the browser, for supervisors and admins.

``/ui/reports`` asks for a date range (Beijing days); ``/ui/reports/view``
draws the report for it with :mod:`ivr.report`'s own functions (the same
figures, charts and HTML as the command), the charts into a temporary
folder, and answers the HTML with the PNG charts inlined, so nothing is kept
on the server.
"""

from __future__ import annotations

import asyncio
import base64
import re
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

from aiohttp import web

from ivr import log
from ivr.report import draw_charts, gather, render_html
from ivr.web.auth import Role
from ivr.web.errors import ApiError
from ivr.web.sessions import SESSION, page
from ivr.web.tickets_api import WORKORDERS
from ivr.web.wallboard import TICKET_STORE
from routing.workorder import BEIJING

MAX_DAYS = 366
# The report's own page: its styles are inline, its charts data: addresses,
# and it runs no script at all.
REPORT_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_IMAGE = re.compile(r'<img src="([A-Za-z0-9_.-]+\.png)"')


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last seven whole days (Beijing time), up to yesterday."""
    today = today or datetime.now(BEIJING).date()
    return today - timedelta(days=7), today - timedelta(days=1)


def parse_range(query) -> tuple[date, date]:
    """``from`` and ``to`` (YYYY-MM-DD) of the query; a 400 naming the field
    otherwise."""
    days = []
    for field in ("from", "to"):
        text = query.get(field, "")
        try:
            days.append(date.fromisoformat(text))
        except ValueError:
            raise ApiError(
                400, "bad_date", f"report: {field}={text!r} is not a date (YYYY-MM-DD)"
            ) from None
    first, last = days
    if last < first:
        raise ApiError(400, "bad_range", f"report: to={last} is before from={first}")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(
            400, "bad_range", f"report: {first}..{last} is longer than {MAX_DAYS} days"
        )
    return first, last


def inline_charts(text: str, folder: Path) -> str:
    """The report's ``<img src="x.png">`` as data: addresses (one response)."""

    def data(match: re.Match) -> str:
        chart = folder / match.group(1)
        if not chart.is_file():
            return match.group(0)
        encoded = base64.b64encode(chart.read_bytes()).decode()
        return f'<img src="data:image/png;base64,{encoded}"'

    return _IMAGE.sub(data, text)


@page(Role.SUPERVISOR)
async def reports_page(request: web.Request) -> web.Response:
    from ivr.web.pages import render

    first, last = default_range()
    return render(
        request,
        "reports.html",
        first=first.isoformat(),
        last=last.isoformat(),
        serving=TICKET_STORE in request.app and WORKORDERS in request.app,
        max_days=MAX_DAYS,
    )


@page(Role.SUPERVISOR)
async def report_view(request: web.Request) -> web.Response:
    first, last = parse_range(request.query)
    store = request.app.get(TICKET_STORE)
    workorders = request.app.get(WORKORDERS)
    if store is None or workorders is None:
        raise ApiError(
            503, "not_serving", "report: no ticket store or catalog on this server"
        )
    catalog = workorders.catalog
    data = await gather(store, first, last)

    def draw() -> str:
        with tempfile.TemporaryDirectory(prefix="yht-report-") as folder:
            out = Path(folder)
            charts = draw_charts(data, catalog, out)
            return inline_charts(render_html(data, catalog, charts), out)

    text = await asyncio.to_thread(draw)
    log.web.info(
        "report %s..%s for %s: %d calls",
        first,
        last,
        request[SESSION].account.name,
        data["calls"],
    )
    return web.Response(
        text=text,
        content_type="text/html",
        charset="utf-8",
        headers=REPORT_HEADERS,
    )


def attach(app: web.Application) -> None:
    app.router.add_get("/ui/reports", reports_page)
    app.router.add_get("/ui/reports/view", report_view)
