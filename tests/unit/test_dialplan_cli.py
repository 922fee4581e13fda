"""The dial plan commands: simulate with caller and time, check's notes."""

from __future__ import annotations

from pathlib import Path

from ivr.cli import main
from tests.unit.test_dialplan_features import PLAN

DEFAULT_PLAN = Path(__file__).parents[2] / "dialplans" / "12345.yaml"


def write_plan(tmp_path: Path, text: str = PLAN) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_simulate_a_registered_enterprise_on_a_holiday(tmp_path, capsys):
    path = write_plan(tmp_path)
    assert (
        main(
            [
                "simulate",
                str(path),
                "--caller",
                "+86 10 6512 3456",
                "--at",
                "2025-10-01T10:00",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "(at 2025-10-01 10:00 Beijing time, wed, National Day, a statutory holiday; "
        "caller 861****3456, a registered enterprise)",
        "[main] play hello: 你好",
        "[main] play flood: 防汛通知",
        "[main] play closed: 营商环境专席已下班",
        "[main] -> desk general (queue general, priority 3): registered enterprise; "
        "desk business closed on National Day (statutory holiday)",
    ]


def test_simulate_a_returning_caller_on_a_make_up_day(tmp_path, capsys):
    path = write_plan(tmp_path)
    assert (
        main(
            [
                "simulate",
                str(path),
                "--keys",
                "-",
                "--recent-desk",
                "business",
                "--at",
                "2025-09-28T15:00+08:00",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "(at 2025-09-28 15:00 Beijing time, sun, a make-up working day; "
        "an unknown caller, recent ticket at desk business)"
    )
    assert lines[3:5] == [
        "ask again: 按1转接上次的服务台 (wait 3 s for a key)",
        "  ... no key for 3 s",
    ]
    assert lines[-1] == "(no more keys: the call waits in menu main)"


def test_simulate_refuses_bad_inputs(tmp_path, capsys):
    path = write_plan(tmp_path)
    assert main(["simulate", str(path), "--at", "tomorrow"]) == 2
    assert main(["simulate", str(path), "--recent-desk", "Big Desk"]) == 2


def test_check_notes_placeholders_and_an_expired_notice(tmp_path, capsys):
    path = write_plan(tmp_path)
    recordings = tmp_path / "recordings"
    (recordings / "zh").mkdir(parents=True)
    for name in ("hello", "main", "again", "closed"):
        (recordings / "zh" / f"{name}.wav").write_bytes(b"RIFF")
    assert main(["check-dialplan", str(path), "--recordings", str(recordings)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{path}: ok (1 menus, 3 desks)"
    assert out[1] == (
        f"{path}: note: 1 prompt(s) have only a spoken placeholder, no recording: "
        "zh/flood"
    )
    assert out[2].startswith(
        f"{path}: note: the notice (flood) expired at 2025-10-09 12:00"
    )
    assert (
        main(["check-dialplan", str(path), "--recordings", str(recordings), "--strict"])
        == 1
    )


def test_check_still_reports_problems_first(tmp_path, capsys):
    path = write_plan(tmp_path, PLAN.replace("{queue: psych,", "{queue: psyche,"))
    assert main(["check-dialplan", str(path)]) == 1
    assert "undefined desk 'psyche'" in capsys.readouterr().err


def test_default_plan_check_flags_its_placeholders(tmp_path, capsys):
    empty = tmp_path / "none"
    assert main(["check-dialplan", str(DEFAULT_PLAN), "--recordings", str(empty)]) == 0
    out = capsys.readouterr().out
    assert "5 prompt(s) have only a spoken placeholder" in out
