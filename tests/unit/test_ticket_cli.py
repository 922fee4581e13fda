"""``hotline tickets ...`` and ``hotline report`` on a real store file."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest

from ivr.cli import main
from tests.support.tickets import AGENT, beijing, call, intake, open_store


@pytest.fixture
def store_file(tmp_path):
    path = tmp_path / "tickets.db"

    async def fill() -> list[str]:
        store, orders = await open_store(path)
        try:
            first = await call(store, beijing("2026-11-02 09:00"), "13800001234")
            second = await call(store, beijing("2026-11-03 09:00"), "13900005678")
            at = beijing("2026-11-02 10:00")
            await orders.act(first["number"], "accept", AGENT, intake("urban"), at=at)
            return [first["number"], second["number"]]
        finally:
            await store.close()

    return path, asyncio.run(fill())


def hotline(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_keeps_json_lines_and_adds_csv_with_filters(store_file, capsys):
    path, (first, second) = store_file
    code, out, _ = hotline(capsys, "tickets", "--store", str(path), "export")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [t["number"] for t in lines] == [first, second]
    assert lines[0]["caller_number"] == "13800001234" and lines[0]["timeline"]

    code, out, _ = hotline(
        capsys, "tickets", "--store", str(path), "export", "--format", "csv",
        "--state", "accepted", "--mask",
    )  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["number"], r["caller_number"]) for r in rows] == [(first, "138****1234")]


def test_moves_and_surveys_from_the_command_line(store_file, capsys):
    path, (first, _) = store_file
    store = ("tickets", "--store", str(path))
    code, out, err = hotline(
        capsys, *store, "act", first, "dispatch", "--as", "agent:li",
        "-p", 'lead={"unit": "urban", "working_days": 3}', "-p", 'co_units=["water"]',
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["state"] == "dispatched"
    code, out, err = hotline(
        capsys, *store, "act", first, "sign", "--as", "unit:zhao@urban"
    )
    assert code == 0 and json.loads(out)["state"] == "signed"

    code, _, err = hotline(capsys, *store, "act", first, "close", "--as", "agent:li")
    assert code == 1 and "cannot close" in err
    code, _, err = hotline(capsys, *store, "act", first, "sign", "--as", "mayor:x")
    assert code == 1 and "no role" in err
    code, _, err = hotline(
        capsys, *store, "act", first, "add_unit", "--as", "agent:li", "-p", "unit=ghost"
    )
    assert code == 1 and "no unit 'ghost'" in err
    code, out, _ = hotline(capsys, *store, "search", "--unit", "water")
    assert first in out
    code, _, err = hotline(capsys, *store, "search", "--from", "2026-11-31")
    assert code == 1 and "from" in err


def test_report_writes_html_and_charts(store_file, tmp_path, capsys):
    path, _ = store_file
    out = tmp_path / "report"
    code, _, err = hotline(
        capsys, "report", "--store", str(path), "--from", "2026-11-01",
        "--to", "2026-11-30", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert (out / "report.html").exists() and (out / "rates.png").exists()
    figures = json.loads((out / "figures.json").read_text(encoding="utf-8"))
    assert figures["calls"] == 2 and figures["work_orders"] == 1
    code, _, err = hotline(
        capsys, "report", "--store", str(path), "--from", "2026-11-30",
        "--to", "2026-11-01",
    )  # fmt: skip
    assert code == 2 and "after" in err
