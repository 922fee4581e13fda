"""The survey's and the follow-up call's decisions (routing/survey.py)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from ivr.config import from_dict
from ivr.errors import ConfigError
from routing import survey as rules
from routing.survey import FollowUpPolicy, Next
from tests.support.tickets import beijing

POLICY = FollowUpPolicy(
    delay=3600, hours=("09:00-12:00", "14:00-20:00"), attempts=3, retry_after=1800
)


@pytest.mark.parametrize(
    ("key", "score"),
    [
        *[("1", 1), ("2", 2), ("3", 3), (" 3 ", 3)],
        *[("4", None), ("0", None), ("*", None), ("#", None), ("", None)],
        *[(None, None), ("12", None)],
    ],
)
def test_only_keys_1_to_3_are_a_score(key, score):
    assert rules.score_of(key) == score


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-12-03 10:00", "2026-12-03 10:00"),  # inside: at once
        ("2026-12-03 07:30", "2026-12-03 09:00"),  # before the day's first range
        ("2026-12-03 12:00", "2026-12-03 14:00"),  # the lunch gap
        ("2026-12-03 13:59", "2026-12-03 14:00"),
        ("2026-12-03 19:59", "2026-12-03 19:59"),
        ("2026-12-03 20:00", "2026-12-04 09:00"),  # evening: the next morning
        ("2026-12-31 23:00", "2027-01-01 09:00"),  # across the year
    ],
)
def test_calls_are_placed_only_within_the_allowed_hours(moment, expected):
    assert rules.allowed_at(POLICY, beijing(moment)) == beijing(expected)


def test_allowed_hours_are_beijing_time_whatever_the_clock_zone():
    utc = beijing("2026-12-03 20:30").astimezone(UTC)  # 12:30 UTC
    found = rules.allowed_at(POLICY, utc)
    assert found == beijing("2026-12-04 09:00") and found.tzinfo == UTC


def test_the_first_call_waits_the_delay_then_the_allowed_hours():
    closed = beijing("2026-12-03 11:30")
    assert rules.first_call_at(POLICY, closed) == beijing("2026-12-03 14:00")
    assert rules.first_call_at(POLICY, beijing("2026-12-03 09:10")) == beijing(
        "2026-12-03 10:10"
    )


def test_no_answer_and_busy_are_retried_then_unreachable():
    now = beijing("2026-12-03 10:00")
    for result in (rules.NO_ANSWER, rules.BUSY, rules.FAILED):
        step, when = rules.after_attempt(POLICY, 1, result, now)
        assert step is Next.RETRY and when == now + timedelta(seconds=1800)
        assert rules.after_attempt(POLICY, 2, result, now)[0] is Next.RETRY
        assert rules.after_attempt(POLICY, 3, result, now) == (Next.UNREACHABLE, None)
    # A retry that would fall in the evening waits for the next morning.
    late = beijing("2026-12-03 19:45")
    assert rules.after_attempt(POLICY, 1, rules.BUSY, late)[1] == beijing(
        "2026-12-04 09:00"
    )


def test_a_score_ends_it_and_an_answer_without_one_is_not_called_again():
    now = beijing("2026-12-03 10:00")
    assert rules.after_attempt(POLICY, 1, rules.RATED, now) == (Next.DONE, None)
    assert rules.after_attempt(POLICY, 1, rules.NO_SCORE, now) == (Next.NO_SCORE, None)
    with pytest.raises(ValueError, match="'maybe'"):
        rules.after_attempt(POLICY, 1, "maybe", now)


@pytest.mark.parametrize(
    ("reason", "cause", "result"),
    [
        ("5", "", rules.BUSY),
        ("3", "", rules.NO_ANSWER),
        ("1", "", rules.NO_ANSWER),
        ("0", "17", rules.BUSY),  # a phone refusing with 486 at once (PJSIP)
        ("0", "19", rules.NO_ANSWER),
        ("0", "", rules.FAILED),
        ("0", "34", rules.FAILED),
    ],
)
def test_a_failed_originate_is_read_from_its_reason_and_hangup_cause(
    reason, cause, result
):
    assert rules.originate_result(False, reason, cause) == result


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"hours": []}, "at least one range"),
        ({"hours": ("9-17",)}, "'9-17' is not a time range"),
        ({"hours": ("20:00-09:00",)}, "ends before it starts"),
        ({"attempts": 0}, "attempts = 0"),
        ({"attempts": 2.5}, "attempts = 2.5"),
        ({"retry_after": -1}, "retry_after = -1"),
        ({"delay": "soon"}, "delay = 'soon'"),
        ({"ring_seconds": 1}, "ring_seconds = 1"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_setting(values, message):
    with pytest.raises(ValueError, match=message):
        FollowUpPolicy(**values)


def _config(tmp_path, followup) -> object:
    raw = {"ami": {"secret_file": "s"}, "followup": followup}
    (tmp_path / "s").write_text("x")
    return from_dict(raw, source=tmp_path / "hotline.toml", base=tmp_path)


def test_followup_section_of_the_configuration(tmp_path):
    config = _config(tmp_path, {"hours": ["08:00-21:00"], "attempts": 2, "delay": 0})
    assert config.followup == FollowUpPolicy(
        hours=("08:00-21:00",), attempts=2, delay=0
    )
    assert _config(tmp_path, {}).followup == FollowUpPolicy()
    for bad, message in (
        ({"tries": 2}, r"\[followup\] unknown key tries"),
        ({"hours": "09:00-20:00"}, r"\[followup\] hours: a list"),
        ({"hours": ["25:00-26:00"]}, r"\[followup\] hours"),
    ):
        with pytest.raises(ConfigError, match=message):
            _config(tmp_path, bad)
