"""``hotline report``: an HTML report with PNG charts, and its figures as JSON.

The figures come from ``ivr.report_figures``; this module reads the tickets
and draws. Drawing is blocking work, so it runs in a thread. Charts are drawn
with matplotlib's Agg canvas directly (no pyplot and its global state), with
the catalog's Chinese names when a CJK font is installed and the ids when not,
so a machine without one draws no empty boxes.
"""

from __future__ import annotations

import asyncio
import html
import json
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from ivr import log
from ivr.report_figures import figures
from ivr.ticket_search import day_start
from ivr.tickets import TicketStore
from routing.workorder import BEIJING, Catalog

COLUMNS = (
    "number, arrived_at, desk, queue_entered_at, queue_wait, outcome, state, "
    "category, area, enterprise, deadline, on_time, satisfaction, repeat_of"
)
# Enough weeks before the report for the jump warning's baseline.
BASELINE_DAYS = 35

RATES = (
    ("answer_rate_15s", "15-second answer rate"),
    ("connection_rate_24h", "24-hour connection rate"),
    ("completion_rate", "completion rate"),
    ("on_time_rate", "on-time rate"),
    ("satisfaction_rate", "satisfaction rate"),
    ("repeat_rate", "repeat rate"),
)


async def gather(
    store: TicketStore, first: date, last: date, *, now: datetime | None = None
) -> dict[str, Any]:
    """Read the period's tickets (and the baseline weeks) and compute the figures."""
    end = day_start(last + timedelta(days=1))
    rows = await store.fetchall(
        f"SELECT {COLUMNS} FROM tickets WHERE arrived_at >= ? AND arrived_at < ?",
        (day_start(first), end),
    )
    earlier = await store.fetchall(
        f"SELECT {COLUMNS} FROM tickets WHERE arrived_at >= ? AND arrived_at < ? "
        "AND state IS NOT NULL AND (enterprise = 1 OR desk = 'business')",
        (day_start(last - timedelta(days=BASELINE_DAYS)), day_start(first)),
    )
    leads = await store.fetchall(
        "SELECT a.deadline, a.handled_at, a.step FROM assignments a "
        "JOIN tickets t ON t.id = a.ticket_id WHERE a.lead = 1 "
        "AND t.arrived_at >= ? AND t.arrived_at < ?",
        (day_start(first), end),
    )
    period_end = datetime.combine(last + timedelta(days=1), time(0), BEIJING)
    as_of = min(period_end, now or datetime.now(UTC))
    return figures(
        rows, first, last, as_of=as_of, leads=leads, earlier_enterprise=earlier
    )


async def write_report(
    store: TicketStore,
    catalog: Catalog,
    first: date,
    last: date,
    out: Path,
    *,
    now: datetime | None = None,
) -> Path:
    """Write report.html, figures.json and the charts into ``out``; the HTML path."""
    data = await gather(store, first, last, now=now)
    path = await asyncio.to_thread(_write, data, catalog, out)
    log.tickets.info(
        "report %s..%s: %d calls, %d work orders -> %s",
        first,
        last,
        data["calls"],
        data["work_orders"],
        path,
    )
    return path


def _write(data: dict[str, Any], catalog: Catalog, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures.json").write_text(
        json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    charts = draw_charts(data, catalog, out)
    page = out / "report.html"
    page.write_text(render_html(data, catalog, charts), encoding="utf-8")
    return page


# -- charts -------------------------------------------------------------------------


@cache
def _cjk_font() -> str | None:
    from matplotlib import font_manager

    for font in font_manager.fontManager.ttflist:
        if any(
            mark in font.name
            for mark in ("CJK", "WenQuanYi", "Source Han", "Noto Sans SC", "SimHei")
        ):
            return font.name
    return None


def _label(catalog: Catalog, key: str) -> str:
    if _cjk_font() is None:
        return key
    for table in (catalog.categories, catalog.areas, catalog.units):
        if key in table:
            return table[key].name
    return key


def draw_charts(data: dict[str, Any], catalog: Catalog, out: Path) -> dict[str, str]:
    """Draw the PNG charts; chart name -> file name."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    font = _cjk_font()
    charts: dict[str, str] = {}

    def save(name: str, figure: Figure) -> None:
        if font:
            for text in figure.findobj(matplotlib.text.Text):
                text.set_fontfamily(font)
        figure.tight_layout()
        FigureCanvasAgg(figure)
        file = f"{name}.png"
        figure.savefig(out / file, dpi=100)
        charts[name] = file

    def bars(name: str, title: str, counts: dict[str, int], color: str) -> None:
        figure = Figure(figsize=(7, 3.6))
        axes = figure.add_subplot()
        labels = [_label(catalog, k) for k in counts] or ["(none)"]
        axes.bar(labels, list(counts.values()) or [0], color=color)
        axes.set_title(title)
        axes.tick_params(axis="x", labelrotation=30)
        save(name, figure)

    bars("calls_by_desk", "Calls per desk", data["calls_by_desk"], "#3b6ea5")
    bars(
        "tickets_by_category",
        "Work orders per category",
        data["tickets_by_category"],
        "#5a9e6f",
    )

    figure = Figure(figsize=(7, 3.6))
    axes = figure.add_subplot()
    names = [label for _, label in RATES]
    values = [(data[key] or 0) * 100 for key, _ in RATES]
    axes.barh(names, values, color="#c07a2c")
    axes.set_xlim(0, 100)
    axes.invert_yaxis()
    for y, value in enumerate(values):
        axes.text(min(value + 1, 92), y, f"{value:.1f}%", va="center")
    axes.set_title("Rates (%)")
    save("rates", figure)

    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    hours = data["calls_by_hour"]
    axes.bar([h["hour"] for h in hours], [h["offered"] for h in hours],
             color="#b8c7dc", label="offered")  # fmt: skip
    axes.bar([h["hour"] for h in hours], [h["answered"] for h in hours],
             color="#3b6ea5", width=0.5, label="answered")  # fmt: skip
    axes.set_xticks(range(0, 24, 2))
    axes.set_xlabel("hour (Beijing)")
    axes.set_title("Calls offered and answered, by hour")
    axes.legend()
    save("calls_by_hour", figure)

    business = data["enterprise"]
    figure = Figure(figsize=(7, 3.4))
    axes = figure.add_subplot()
    last = date.fromisoformat(data["period"]["to"])
    spans = []
    for back in range(
        len(next(iter(business["weekly"].values()), [0] * 5)) - 1, -1, -1
    ):
        end = last - timedelta(days=7 * back)
        spans.append(f"{(end - timedelta(days=6)):%m-%d}–{end:%m-%d}")
    warned = {w["category"] for w in business["warnings"]}
    for category in sorted(business["weekly"], key=lambda c: (c not in warned, c))[:6]:
        counts = business["weekly"][category][::-1]
        axes.plot(
            spans,
            counts,
            marker="o",
            linewidth=3 if category in warned else 1.2,
            label=_label(catalog, category) + (" (jump)" if category in warned else ""),
        )
    axes.yaxis.get_major_locator().set_params(integer=True)
    axes.set_title("Enterprise requests per 7 days, by category")
    if business["weekly"]:
        axes.legend(fontsize="small")
    save("enterprise_trend", figure)

    figure = Figure(figsize=(7, 3.6))
    axes = figure.add_subplot()
    areas = sorted({a for c in business["by_category_area"].values() for a in c})
    bottom = [0] * len(areas)
    for category, per_area in business["by_category_area"].items():
        heights = [per_area.get(a, 0) for a in areas]
        axes.bar(
            [_label(catalog, a) for a in areas],
            heights,
            bottom=bottom,
            label=_label(catalog, category),
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    axes.set_title("Enterprise requests by area and category")
    if areas:
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    save("enterprise_by_area", figure)
    return charts


# -- the page -----------------------------------------------------------------------


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _table(title: str, counts: dict[str, int], catalog: Catalog) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(key)}</td><td>{html.escape(_name(catalog, key))}</td>"
        f"<td class=n>{count}</td></tr>"
        for key, count in counts.items()
    )
    return (
        f"<table><caption>{html.escape(title)}</caption>"
        f"<tr><th>id</th><th>name</th><th>count</th></tr>{rows}</table>"
    )


def _name(catalog: Catalog, key: str) -> str:
    for table in (catalog.categories, catalog.areas, catalog.units):
        if key in table:
            return table[key].name
    return ""


def render_html(data: dict[str, Any], catalog: Catalog, charts: dict[str, str]) -> str:
    period = data["period"]
    counts = [
        ("calls", data["calls"]),
        ("offered to agents", data["offered"]),
        ("answered", data["answered"]),
        ("answered within 15 s", data["answered_15s"]),
        ("work orders", data["work_orders"]),
        ("completed", data["completed"]),
        ("due", data["due"]),
        ("on time", data["on_time"]),
        ("surveyed", data["surveyed"]),
        ("satisfied or basically satisfied", data["satisfied"]),
        ("repeated complaints", data["repeats"]),
    ]
    rates = "".join(
        f"<tr><td>{label}</td><td class=n id={key}>{_percent(data[key])}</td></tr>"
        for key, label in RATES
    )
    numbers = "".join(
        f"<tr><td>{label}</td><td class=n>{value}</td></tr>" for label, value in counts
    )
    business = data["enterprise"]
    warnings = (
        "".join(
            f"<li class=warn>{html.escape(w['category'])} "
            f"({html.escape(_name(catalog, w['category']))}): "
            f"{w['last_7_days']} in the last 7 days against a baseline of "
            f"{w['baseline']} a week</li>"
            for w in business["warnings"]
        )
        or "<li>no category jumped against its recent baseline</li>"
    )
    images = "".join(
        f'<figure><img src="{html.escape(file)}" alt="{html.escape(name)}"></figure>'
        for name, file in charts.items()
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>12345 report {period["from"]} – {period["to"]}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: 1em 1em 1em 0; display: inline-table;
  vertical-align: top; }}
td, th {{ border: 1px solid #ccc; padding: 0.2em 0.6em; }}
td.n {{ text-align: right; }} caption {{ font-weight: bold; text-align: left; }}
li.warn {{ color: #a33; font-weight: bold; }}
figure {{ display: inline-block; margin: 0.5em; }}
</style></head><body>
<h1>12345 hotline report</h1>
<p>Calls that arrived from {period["from"]} to {period["to"]} (Beijing days).</p>
<h2>Rates</h2><table><tr><th>rate</th><th>value</th></tr>{rates}</table>
<table><tr><th>count</th><th>value</th></tr>{numbers}</table>
<h2>Calls and work orders</h2>
{_table("calls per desk", data["calls_by_desk"], catalog)}
{_table("work orders per desk", data["tickets_by_desk"], catalog)}
{_table("work orders per category", data["tickets_by_category"], catalog)}
<h2>Business environment (营商环境)</h2>
<p>{business["requests"]} enterprise requests.</p>
<ul>{warnings}</ul>
{_table("enterprise requests per category", business["by_category"], catalog)}
{_table("enterprise requests per area", business["by_area"], catalog)}
<h2>Charts</h2>
{images}
</body></html>
"""
