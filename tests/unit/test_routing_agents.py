"""Agents' states and the queue actions they call for (routing.agents)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from routing.agents import WRAP_UP, Action, AgentBook, MemberSnapshot


@dataclass(frozen=True)
class Cfg:
    extension: str
    name: str
    skills: dict = field(default_factory=dict)
    auto_login: bool = True


QUEUES = {d: d for d in ("general", "business", "psych", "queue1", "queue2")}


def book(**wrapup) -> AgentBook:
    return AgentBook(
        [
            Cfg("6001", "Zhang", {"business": 1, "general": 2, "queue1": 1}),
            Cfg("6002", "Li", {"psych": 1, "queue2": 1}),
            Cfg("6003", "Wang", {"general": 1}, auto_login=False),
        ],
        QUEUES,
        wrapup=wrapup,
        default_wrapup=10,
    )


def logged_in(b: AgentBook, *extensions: str) -> AgentBook:
    for extension in extensions:
        b.login(extension, 0.0)
    return b


def test_login_adds_every_skill_with_its_level_as_penalty_and_only_once():
    b = book()
    assert b.login("6001", 0.0) == [
        Action("add", "6001", "business", penalty=0),
        Action("add", "6001", "general", penalty=1),
        Action("add", "6001", "queue1", penalty=0),
    ]
    assert b.login("6001", 1.0) == []
    assert b.get("6001").status(1.0) == "available"


def test_pause_with_a_reason_and_unpause():
    b = logged_in(book(), "6001")
    assert b.pause("6001", "lunch", 1.0) == [
        Action("pause", "6001", reason="lunch", paused=True)
    ]
    assert b.get("6001").status(1.0) == "paused"
    assert b.unpause("6001", 2.0) == [Action("unpause", "6001")]
    assert b.get("6001").status(2.0) == "available"
    assert b.unpause("6001", 3.0) == []  # not paused: nothing to tell Asterisk


def test_the_wrapup_reason_belongs_to_the_router():
    with pytest.raises(ValueError, match="router's own"):
        logged_in(book(), "6001").pause("6001", WRAP_UP, 0.0)


def test_a_completed_call_pauses_for_the_desks_wrapup_then_unpauses():
    b = logged_in(book(psych=30), "6001", "6002")
    b.connected("6001", "PJSIP/pstn-1")
    assert b.get("6001").status(1.0) == "busy"

    assert b.completed("6001", "PJSIP/pstn-1", "business", 5.0) == [
        Action("pause", "6001", reason=WRAP_UP, paused=True)
    ]
    agent = b.get("6001")
    assert agent.wrapup_until == 15.0 and agent.status(6.0) == "wrap_up"
    assert b.wrapup_due("6001", 14.9) == []  # early timer: nothing yet
    assert b.wrapup_due("6001", 15.0) == [Action("unpause", "6001")]
    assert agent.status(15.0) == "available"

    b.completed("6002", "PJSIP/pstn-2", "psych", 0.0)
    assert b.get("6002").wrapup_until == 30.0


def test_a_pause_during_the_wrapup_outlives_it():
    b = logged_in(book(), "6001")
    b.completed("6001", "PJSIP/pstn-1", "business", 0.0)
    assert b.pause("6001", "break", 2.0) == [
        Action("pause", "6001", reason="break", paused=True)
    ]
    assert b.wrapup_due("6001", 10.0) == []
    assert b.get("6001").status(10.0) == "paused"


def test_unpause_ends_a_running_wrapup_early():
    b = logged_in(book(), "6001")
    b.completed("6001", "PJSIP/pstn-1", "business", 0.0)
    assert b.unpause("6001", 3.0) == [Action("unpause", "6001")]
    assert b.get("6001").status(3.0) == "available"
    assert b.wrapup_due("6001", 10.0) == []


def test_no_wrapup_for_a_logged_out_agent_or_a_desk_without_one():
    b = book(general=0)
    assert b.completed("6001", "PJSIP/pstn-1", "business", 0.0) == []
    logged_in(b, "6001")
    assert b.completed("6001", "PJSIP/pstn-1", "general", 0.0) == []


def test_logout_while_ringing_removes_and_stops_the_ring():
    b = logged_in(book(), "6002")
    b.called("6002", "PJSIP/pstn-7", "PJSIP/6002-0000002a")
    assert b.get("6002").status(0.0) == "busy"
    assert b.logout("6002") == [
        Action("remove", "6002", "psych"),
        Action("remove", "6002", "queue2"),
        Action("hangup", "6002", channel="PJSIP/6002-0000002a"),
    ]
    assert b.get("6002").status(0.0) == "logged_out"
    assert b.logout("6002") == []


def test_an_idle_phone_clears_rings_and_calls_missed_while_away():
    b = logged_in(book(), "6001")
    b.called("6001", "PJSIP/pstn-1", "PJSIP/6001-01")
    b.connected("6001", "PJSIP/pstn-2")
    b.device_changed("6001", "1")
    assert b.get("6001").status(0.0) == "available"
    b.device_changed("6001", "5")
    assert b.get("6001").status(0.0) == "unavailable"


def member(queue: str, **kw) -> MemberSnapshot:
    values = {
        "penalty": 0,
        "paused": False,
        "reason": "",
        "last_pause": 0.0,
        "device": "idle",
        **kw,
    }
    return MemberSnapshot(queue, **values)


# Case 16: after an attended transfer into a second queue, app_queue reports
# LastCall: 0 for the members of both queues while the router's wrap-up runs.
CASE_16_REFRESH = member("queue1", paused=False, reason="")


def test_case_16_a_refresh_with_lastcall_0_never_ends_a_running_wrapup():
    b = AgentBook(
        [Cfg("6001", "A", {"queue1": 1}), Cfg("6002", "B", {"queue2": 1})],
        {"queue1": "queue1", "queue2": "queue2"},
        wrapup={"queue1": 10, "queue2": 50},
    )
    logged_in(b, "6001", "6002")
    b.connected("6001", "PJSIP/trunk-1")
    # 6001 completes the transfer and leaves the customer: its wrap-up (10 s).
    assert b.completed("6001", "PJSIP/trunk-1", "queue1", 100.0) == [
        Action("pause", "6001", reason=WRAP_UP, paused=True)
    ]
    # The status refresh: in queue1, not paused, LastCall 0.
    actions = b.reconcile(
        "6001", [CASE_16_REFRESH], now=103.0, epoch=1_700_000_003.0, adopt=False
    )
    assert actions == [Action("pause", "6001", "queue1", reason=WRAP_UP, paused=True)]
    assert b.get("6001").wrapup_until == 110.0
    assert b.get("6001").status(105.0) == "wrap_up"
    # 6002's own wrap-up (50 s) starts when its call ends, not before.
    assert b.get("6002").wrapup_until is None
    b.completed("6002", "PJSIP/trunk-1", "queue2", 130.0)
    assert b.get("6002").wrapup_until == 180.0
    assert b.wrapup_due("6001", 110.0) == [Action("unpause", "6001")]


def test_after_an_asterisk_restart_members_are_added_back_with_their_pauses():
    b = logged_in(book(), "6001", "6002")
    b.pause("6002", "lunch", 0.0)
    b.completed("6001", "PJSIP/pstn-1", "business", 0.0)
    b.logout("6002")
    b.login("6002", 1.0)  # a pause asked for while logged out is kept
    assert b.reconcile("6001", [], now=2.0, epoch=0.0, adopt=False) == [
        Action("add", "6001", q, penalty=p, paused=True, reason=WRAP_UP)
        for q, p in (("business", 0), ("general", 1), ("queue1", 0))
    ]
    assert b.reconcile("6003", [], now=2.0, epoch=0.0, adopt=False) == []


def test_reconcile_fixes_penalties_removes_strays_and_unpauses_stale_wrapups():
    b = logged_in(book(), "6001")
    actual = [
        member("business", penalty=3),
        member("general", penalty=1, paused=True, reason=WRAP_UP),
        member("queue1"),
        member("psych"),
    ]
    assert b.reconcile("6001", actual, now=0.0, epoch=0.0, adopt=False) == [
        Action("penalty", "6001", "business", penalty=0),
        Action("unpause", "6001", "general"),
        Action("remove", "6001", "psych"),
    ]


def test_a_restarted_server_adopts_members_pauses_and_what_is_left_of_a_wrapup():
    b = book()
    actual = [
        member("business", paused=True, reason=WRAP_UP, last_pause=1000.0),
        member("general", penalty=1, paused=True, reason=WRAP_UP, last_pause=1000.0),
        member("queue1", paused=True, reason=WRAP_UP, last_pause=1000.0),
    ]
    assert b.reconcile("6001", actual, now=50.0, epoch=1004.0, adopt=True) == []
    agent = b.get("6001")
    assert agent.logged_in and agent.wrapup_until == pytest.approx(56.0)
    # Paused in Asterisk for a lunch: still paused, same reason.
    b.reconcile(
        "6002",
        [member("psych", paused=True, reason="lunch")],
        now=0,
        epoch=0,
        adopt=True,
    )
    assert b.get("6002").pause_reason == "lunch"
    # In no queue at all: logged in only if configured to log in by itself.
    assert b.reconcile("6003", [], now=0, epoch=0, adopt=True) == []
    assert not b.get("6003").logged_in
    # A wrap-up whose time is over is ended by unpausing.
    b2 = book()
    stale = [member("business", paused=True, reason=WRAP_UP, last_pause=1.0)]
    actions = b2.reconcile("6001", stale, now=0.0, epoch=500.0, adopt=True)
    assert Action("unpause", "6001", "business") in actions


def test_skills_for_missing_desks_and_desks_nobody_serves_are_reported():
    b = AgentBook(
        [Cfg("6001", "A", {"business": 1, "police": 1})],
        {"business": "business", "general": "general"},
    )
    assert b.problems() == [
        "agent 6001: skill for unknown desk 'police'",
        "desk 'general': no agent has its skill",
    ]
    assert b.login("6001", 0.0) == [Action("add", "6001", "business", penalty=0)]
    # A dial plan that adds the desk: the next reconcile adds the member.
    b.set_queues({"business": "business", "general": "general", "police": "police"})
    assert b.reconcile(
        "6001", [member("business")], now=0.0, epoch=0.0, adopt=False
    ) == [Action("add", "6001", "police", penalty=0)]


def test_pauses_seen_in_asterisk_count_per_desk_and_stale_wrapups_end():
    b = logged_in(book(), "6001")
    # Paused at Asterisk's CLI in one queue only: paused there, not elsewhere.
    assert b.pause_seen("6001", "business", True, "cli", 0.0) == []
    agent = b.get("6001")
    assert agent.status_in("business", 0.0) == "paused"
    assert agent.status_in("general", 0.0) == "available"
    assert b.pause_seen("6001", "business", False, "", 0.0) == []
    assert agent.status_in("business", 0.0) == "available"
    # A wrap-up pause the router is running stays; one it is not is ended.
    b.completed("6001", "PJSIP/pstn-1", "business", 0.0)
    assert b.pause_seen("6001", "business", True, WRAP_UP, 1.0) == []
    assert b.pause_seen("6001", "general", True, WRAP_UP, 10.5) == []  # our echo
    assert b.pause_seen("6001", "general", True, WRAP_UP, 13.0) == [
        Action("unpause", "6001", "general")
    ]
