"""Warm transfers: the state machine, target configuration, and the AMI side
replaying the event order Asterisk 22 sends (issue 5, case 18)."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest
from panoramisk.message import Message

from ivr.calls import Call
from ivr.config import from_dict
from ivr.errors import ConfigError
from ivr.transfer import TransferDesk, TransferError
from routing import transfer as rules
from routing.transfer import Target, Transfer, parse_targets

POLICE = Target("police", "110", "PJSIP/trunk-110", dial_timeout=5, key="*0")


# -- the state machine --------------------------------------------------------


def test_answer_then_complete_gives_one_completed_outcome():
    t = Transfer("x-1", "police", 0.0)
    assert t.on(rules.ANSWERED, 2.0) == []
    assert t.state == "consulting"
    assert t.on(rules.AGENT_GONE, 5.0) == []  # Asterisk completes it
    t.on(rules.COMPLETED, 5.1)
    assert (t.state, t.outcome) == ("ended", "completed")
    assert t.on(rules.CALLER_GONE, 30.0) == []
    segment = t.segment()
    assert segment["ring_seconds"] == 2.0 and segment["consult_seconds"] == 3.1


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("BUSY", "busy"), ("NOANSWER", "no_answer"), ("CHANUNAVAIL", "unreachable")],
)
def test_dial_failures_name_why(status, outcome):
    t = Transfer("x-1", "police", 0.0)
    t.on(rules.DIAL_FAILED, 1.0, status)
    assert (t.outcome, t.reason) == (outcome, status)
    # The leg's hangup that follows changes nothing.
    t.on(rules.CONSULT_ENDED, 1.1)
    assert t.outcome == outcome


def test_caller_gone_while_ringing_hangs_up_consult_and_agent_once():
    t = Transfer("x-1", "police", 0.0)
    assert t.on(rules.CALLER_GONE, 3.0) == [rules.HANGUP_CONSULT, rules.HANGUP_AGENT]
    assert (t.outcome, t.reason) == ("abandoned", "transfer abandoned by caller")
    assert t.on(rules.CALLER_GONE, 3.1) == []
    assert t.on(rules.CONSULT_ENDED, 3.2) == []


def test_a_late_answer_after_cancel_is_hung_up_at_once():
    t = Transfer("x-1", "police", 0.0)
    assert t.on(rules.CANCEL, 1.0) == [rules.CANCEL_ATXFER, rules.HANGUP_CONSULT]
    assert t.outcome == "cancelled"
    assert t.on(rules.ANSWERED, 2.0) == [rules.HANGUP_CONSULT]
    assert t.outcome == "cancelled"


def test_agent_hanging_up_while_ringing_hands_the_caller_over():
    t = Transfer("x-1", "police", 0.0)
    t.on(rules.AGENT_GONE, 1.0)
    assert t.state == "handed_over" and t.active
    t.on(rules.ANSWERED, 4.0)
    t.on(rules.COMPLETED, 4.0)
    assert t.outcome == "completed"


def test_a_hand_over_is_completed_only_when_the_target_answers():
    # Asterisk reports AttendedTransfer as soon as the agent hangs up.
    t = Transfer("x-1", "police", 0.0)
    t.on(rules.COMPLETED, 1.0)
    t.on(rules.AGENT_GONE, 1.0)
    assert t.state == "handed_over" and not t.outcome
    assert t.on(rules.ANSWERED, 3.0) == []  # never hung up: it is the hand-over
    assert t.outcome == "completed" and t.segment()["ring_seconds"] == 3.0


@pytest.mark.parametrize(
    ("fact", "detail", "outcome"),
    [
        (rules.DIAL_FAILED, "NOANSWER", "no_answer"),
        (rules.DIAL_FAILED, "BUSY", "busy"),
        (rules.CONSULT_ENDED, "", "unreachable"),
    ],
)
def test_agent_gone_and_target_never_answers_requeues_the_caller(fact, detail, outcome):
    t = Transfer("x-1", "police", 0.0)
    t.on(rules.COMPLETED, 1.0)  # AttendedTransfer as the agent hangs up
    t.on(rules.AGENT_GONE, 1.0)
    # yht-transfer redirects the caller; nothing for the server to hang up.
    assert t.on(fact, 5.0, detail) == []
    assert (t.outcome, t.requeued) == (outcome, True)
    assert t.reason.endswith("agent gone, caller back to the queue")
    assert t.segment()["requeued"] is True
    # The leg's hangup and the caller's later hangup change nothing.
    assert t.on(rules.CONSULT_ENDED, 5.1) == [] and t.outcome == outcome
    assert t.on(rules.CALLER_GONE, 30.0) == [] and t.outcome == outcome


def test_dial_failure_with_the_agent_present_is_not_a_requeue():
    t = Transfer("x-1", "police", 0.0)
    t.on(rules.DIAL_FAILED, 5.0, "NOANSWER")
    assert (t.outcome, t.requeued) == ("no_answer", False)


def test_threeway_survives_the_consult_leg_and_the_caller_alone():
    t = Transfer("x-1", "police", 0.0)
    t.on(rules.ANSWERED, 1.0)
    t.on(rules.THREEWAY, 3.0)
    assert t.on(rules.CONSULT_ENDED, 4.0) == []
    assert t.on(rules.CANCEL, 4.0) == []
    assert t.outcome == "threeway"


# -- configuration --------------------------------------------------------------


def _raw(targets):
    return {"ami": {}, "transfer": {"targets": targets}}


def test_targets_parse_and_refuse_unknown_keys_naming_the_section(tmp_path):
    os.environ["YHT_AMI_SECRET"] = "s"
    try:
        config = from_dict(
            _raw([{"name": "police", "dial": "PJSIP/trunk-110", "key": "*0"}]),
            base=tmp_path,
        )
        assert config.transfer_targets[0].label == "police"
        with pytest.raises(
            ConfigError, match=r"\[\[transfer.targets\]\] entry 1.*colour"
        ):
            from_dict(
                _raw([{"name": "police", "dial": "PJSIP/x", "colour": "blue"}]),
                base=tmp_path,
            )
        with pytest.raises(ConfigError, match=r"\[transfer\] unknown key"):
            from_dict({"transfer": {"target": []}}, base=tmp_path)
    finally:
        del os.environ["YHT_AMI_SECRET"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"name": "Police!", "dial": "PJSIP/x"}, "name must be"),
        ({"name": "p", "dial": "SIP/x"}, "dial 'SIP/x'"),
        ({"name": "p", "dial": "PJSIP/x", "key": "5"}, "key '5'"),
        ({"name": "p", "dial": "PJSIP/x", "dial_timeout": 1}, "dial_timeout"),
        ({"name": "p", "dial": "PJSIP/x", "fields": ["id_card"]}, "id_card"),
        ({"name": "p", "dial": "PJSIP/x", "desk": "psych"}, "dial or desk, not"),
        ({"name": "p", "desk": "Psych;1"}, "desk 'Psych;1'"),
        ({"name": "p", "label": "nothing"}, "needs name and dial \\(or desk\\)"),
    ],
)
def test_bad_targets_are_refused_by_name(entry, message):
    with pytest.raises(ValueError, match=message):
        parse_targets({"targets": [entry]})


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        # A quoted "false" is truthy: it would send the unmasked number.
        ("show_caller_number", "false", "show_caller_number must be true/false"),
        ("show_caller_number", 0, "show_caller_number must be true/false"),
        ("dial_timeout", "20", "dial_timeout must be a whole number, not str '20'"),
        ("dial_timeout", True, "dial_timeout must be a whole number, not bool"),
        ("dial_timeout", 20.5, "dial_timeout must be a whole number"),
        ("label", 110, "label must be a string, not int 110"),
        ("key", 0, "key must be a string"),
        ("handoff_topic", ["a"], "handoff_topic must be a string"),
        ("webhook_secret_env", False, "webhook_secret_env must be a string"),
        ("webhook_secret_file", 1, "webhook_secret_file must be a string"),
        ("fields", "address", "fields must be a list of field names"),
        ("fields", ["address", 3], "fields must be a list of field names"),
    ],
)
def test_target_values_are_type_checked_naming_the_target_and_key(key, value, message):
    entry = {"name": "police", "dial": "PJSIP/trunk-110", key: value}
    with pytest.raises(ValueError, match="police") as exc:
        parse_targets({"targets": [entry]})
    assert message in str(exc.value)
    assert str(exc.value).startswith("[[transfer.targets]] 'police': ")


def test_bad_typed_dial_desk_or_name_are_refused_naming_the_entry():
    with pytest.raises(ValueError, match="'p': dial must be a string"):
        parse_targets({"targets": [{"name": "p", "dial": 110}]})
    with pytest.raises(ValueError, match="'p': desk must be a string"):
        parse_targets({"targets": [{"name": "p", "desk": 7}]})
    with pytest.raises(ValueError, match="entry 2: name must be a string, not int"):
        parse_targets(
            {
                "targets": [
                    {"name": "a", "dial": "PJSIP/a"},
                    {"name": 5, "dial": "PJSIP/b"},
                ]
            }
        )
    with pytest.raises(ValueError, match="name must be a string"):
        Target(5, "five", "PJSIP/x")


def test_typed_target_values_are_kept():
    (target,) = parse_targets(
        {
            "targets": [
                {
                    "name": "police",
                    "dial": "PJSIP/trunk-110",
                    "dial_timeout": 30,
                    "show_caller_number": True,
                    "fields": ["address"],
                }
            ]
        }
    )
    assert target.show_caller_number is True and target.dial_timeout == 30
    assert target.fields == ("address",)
    hash(target)  # still a frozen, hashable value


def test_a_desk_target_waits_in_the_desks_queue():
    (target,) = parse_targets({"targets": [{"name": "psych-desk", "desk": "psych"}]})
    assert target.dial == "Local/psych@yht-transfer-desk/n"
    assert target.label == "psych-desk" and not target.handoff_topic


def test_the_desk_context_only_queues():
    """yht-transfer-desk, dialled from yht-transfer, never dials out."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "asterisk/conf/extensions.conf").read_text()
    body = text.split("[yht-transfer-desk]", 1)[1].split("\n[", 1)[0]
    assert "Queue(${EXTEN}" in body and "Dial(" not in body


def test_two_targets_may_not_share_a_key():
    with pytest.raises(ValueError, match="key '\\*0'"):
        parse_targets(
            {
                "targets": [
                    {"name": "a", "dial": "PJSIP/a", "key": "*0"},
                    {"name": "b", "dial": "PJSIP/b", "key": "*0"},
                ]
            }
        )


# -- the AMI side, on Asterisk 22's event order -----------------------------------


class Session:
    def __init__(self):
        self.actions: list[tuple[str, dict]] = []

    async def action(self, name, headers=None, **kw):
        self.actions.append((name, dict(headers or {})))
        return Message({"Response": "Success"})


class Bus:
    def __init__(self):
        self.events: list[tuple[str, str, dict]] = []

    def publish(self, type, topic, data, **kw):
        self.events.append((type, topic, data))


class Tracker:
    def __init__(self, call):
        self.calls = {call.channel: call}
        self.notes: list[tuple[str, dict]] = []

    def note(self, call, kind, data):
        self.notes.append((kind, data))

    async def drain(self):
        pass


CALLER = "PJSIP/pstn-00000030"
AGENT = "PJSIP/6001-00000031"
LOCAL1 = "Local/1@yht-transfer-00000000;1"
LOCAL2 = "Local/1@yht-transfer-00000000;2"
TARGET = "PJSIP/trunk-110-00000033"
LINKED = "1700000100.10"


def ev(name, **fields):
    return Message({"Event": name, "Linkedid": LINKED, **fields})


@pytest.fixture
async def desk():
    call = Call(LINKED, CALLER, "13800000005", "", "2026-12-03T08:00:00.000Z")
    call.phase = "answered"
    call.ticket_number = "12345-20261203-000001"
    desk = TransferDesk(Session(), Tracker(call), Bus(), (POLICE,))
    worker = asyncio.create_task(desk.run())
    desk.handle(
        ev("AgentConnect", Channel=CALLER, DestChannel=AGENT, Interface="PJSIP/6001")
    )
    yield desk
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker


def _ringing(desk):
    desk.handle(ev("Newchannel", Channel=LOCAL1))
    desk.handle(ev("Newchannel", Channel=LOCAL2))
    desk.handle(ev("DialBegin", Channel=LOCAL2, DestChannel=TARGET))


def _types(desk):
    return [t for t, _, _ in desk.bus.events]


async def test_start_sets_the_dial_and_sends_atxfer(desk):
    result = await desk.request(LINKED, "police", "start")
    assert result["state"] == "dialing" and result["target"] == "police"
    names = [name for name, _ in desk.session.actions]
    assert names == ["Setvar"] * 5 + ["Atxfer"]
    assert desk.session.actions[0][1]["Value"] == "PJSIP/trunk-110"
    # What yht-transfer needs to requeue the caller if the agent leaves.
    sent = {a["Variable"]: a["Value"] for n, a in desk.session.actions[:5]}
    assert sent["__YHT_XFER_AGENT"] == AGENT
    assert sent["__YHT_XFER_CALLER"] == desk.find_call(LINKED).channel
    assert desk.session.actions[-1][1] == {
        "Channel": AGENT,
        "Exten": "1",
        "Context": "yht-transfer",
    }
    with pytest.raises(TransferError, match="already transferring"):
        await desk.request(LINKED, "police", "start")


async def test_unknown_call_or_target_is_refused(desk):
    with pytest.raises(TransferError) as exc:
        await desk.request("nope", "police", "start")
    assert exc.value.status == 404
    with pytest.raises(TransferError, match="no transfer target 'fire'"):
        await desk.request(LINKED, "fire", "start")


async def test_case_18_caller_hangs_up_while_target_rings(desk):
    await desk.request(LINKED, "police", "start")
    _ringing(desk)
    desk.session.actions.clear()
    # Asterisk 22 may report the consult leg's end before the caller's Hangup.
    desk.handle(ev("Hangup", Channel=LOCAL1))
    desk.handle(ev("Hangup", Channel=CALLER, Cause="16"))
    await asyncio.sleep(0.05)
    hangups = [h["Channel"] for name, h in desk.session.actions if name == "Hangup"]
    assert hangups == [LOCAL1, TARGET, AGENT]
    await asyncio.sleep(0.6)
    assert _types(desk).count("transfer.abandoned") == 1
    assert [d["outcome"] for k, d in desk.tracker.notes if k == "transfer"] == [
        "abandoned"
    ]


async def test_case_18b_cancel_then_late_answer_is_hung_up(desk):
    await desk.request(LINKED, "police", "start")
    _ringing(desk)
    await desk.request(LINKED, "police", "abort")
    desk.handle(ev("DialEnd", Channel=LOCAL2, DestChannel=TARGET, DialStatus="ANSWER"))
    await asyncio.sleep(0.05)
    names = [(n, h.get("Channel")) for n, h in desk.session.actions]
    assert ("CancelAtxfer", AGENT) in names
    assert names.count(("Hangup", TARGET)) == 2  # at the cancel, and the late answer
    assert _types(desk).count("transfer.cancelled") == 1


async def test_busy_is_recorded_once_with_the_dial_status(desk):
    await desk.request(LINKED, "police", "start")
    _ringing(desk)
    desk.handle(ev("DialEnd", Channel=LOCAL2, DestChannel=TARGET, DialStatus="BUSY"))
    desk.handle(ev("Hangup", Channel=LOCAL1))
    await asyncio.sleep(0.6)
    segments = [d for k, d in desk.tracker.notes if k == "transfer"]
    assert [(s["outcome"], s["reason"]) for s in segments] == [("busy", "BUSY")]
    assert segments[0]["caller_with"] == "6001"
    assert LINKED not in desk.running


async def test_the_agent_key_starts_a_transfer_but_not_from_the_caller(desk):
    desk.handle(ev("UserEvent", UserEvent="YhtTransferKey", Key="*0", Channel=CALLER))
    await asyncio.sleep(0.05)
    assert desk.session.actions == []
    desk.handle(ev("UserEvent", UserEvent="YhtTransferKey", Key="*0", Channel=AGENT))
    await asyncio.sleep(0.05)
    assert [n for n, _ in desk.session.actions][-1] == "Atxfer"


def test_the_transfer_context_is_unreachable_from_outside():
    """Toll fraud: callers and trunks must never reach yht-transfer's Dial()."""
    from pathlib import Path

    text = (Path(__file__).parents[2] / "asterisk/conf/extensions.conf").read_text()
    contexts: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        stripped = line.split(";", 1)[0].strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            name = stripped[1:-1]
            contexts[name] = ""
        elif name:
            contexts[name] += stripped + "\n"
    assert "Dial(${YHT_XFER_DIAL}" in contexts["yht-transfer"]
    assert "include" not in "".join(contexts.values())
    for context, body in contexts.items():
        if context != "yht-transfer":
            assert "yht-transfer" not in body.replace("yht-transfer-", ""), context


async def test_a_menu_transfer_dials_from_the_caller_and_falls_back(desk):
    call = desk.find_call(LINKED)
    call.phase = "menu"
    assert desk.direct(call, "fire") is None
    variables = desk.direct(call, "police")
    assert variables == {
        "YHT_DIRECT_DIAL": "PJSIP/trunk-110",
        "YHT_DIRECT_TIMEOUT": "5",
    }
    desk.handle(ev("DialBegin", Channel=CALLER, DestChannel=TARGET))
    desk.handle(ev("DialEnd", Channel=CALLER, DestChannel=TARGET, DialStatus="BUSY"))
    await asyncio.sleep(0.05)
    segments = [d for k, d in desk.tracker.notes if k == "transfer"]
    assert [(s["outcome"], s["from"], s["caller_with"]) for s in segments] == [
        ("busy", "menu", "general desk")
    ]
    # The queue's own dials that follow are not this transfer's.
    desk.handle(ev("DialEnd", Channel=CALLER, DestChannel=AGENT, DialStatus="ANSWER"))
    await asyncio.sleep(0.05)
    assert not [n for n, h in desk.session.actions if n == "Hangup"]
    with pytest.raises(TransferError):
        await desk.request(LINKED, "police", "abort")


# -- across an AMI reconnect -----------------------------------------------------


def _seen(**changes):
    base = dict(
        caller_up=True,
        agent_up=True,
        consult_up=True,
        target_answered=False,
        caller_with_target=False,
        caller_alone=False,
    )
    return rules.Seen(**{**base, **changes})


@pytest.mark.parametrize(
    ("state", "seen", "facts", "actions"),
    [
        # Still ringing or still consulting: carry on.
        ("dialing", _seen(), [], []),
        ("consulting", _seen(target_answered=True), [], []),
        ("threeway", _seen(consult_up=False), [], []),
        ("ended", _seen(caller_up=False), [], []),
        # The target answered while we were away.
        ("dialing", _seen(target_answered=True), [rules.ANSWERED], []),
        # The caller left: what is left of the consultation is hung up.
        ("dialing", _seen(caller_up=False), [rules.CALLER_GONE], []),
        ("consulting", _seen(caller_up=False), [rules.CALLER_GONE], []),
        # The consultation ended; the agent is back with the caller.
        ("dialing", _seen(consult_up=False), [rules.CONSULT_ENDED], []),
        ("consulting", _seen(consult_up=False), [rules.CONSULT_ENDED], []),
        # The agent left a consultation: Asterisk completed the transfer.
        ("consulting", _seen(agent_up=False), [rules.COMPLETED], []),
        # The agent left while the target rang.
        ("dialing", _seen(agent_up=False), [rules.AGENT_GONE], []),
        (
            "dialing",
            _seen(agent_up=False, consult_up=False, caller_with_target=True),
            [rules.AGENT_GONE, rules.ANSWERED],
            [],
        ),
        # ... and the target never answered: the caller alone goes back.
        (
            "handed_over",
            _seen(agent_up=False, consult_up=False, caller_alone=True),
            [rules.CONSULT_ENDED],
            [rules.REQUEUE_CALLER],
        ),
        # ... already back in the queue (yht-transfer did it): only recorded.
        (
            "dialing",
            _seen(agent_up=False, consult_up=False),
            [rules.AGENT_GONE, rules.CONSULT_ENDED],
            [],
        ),
        # Nobody left with the caller after a consultation.
        (
            "consulting",
            _seen(agent_up=False, consult_up=False, caller_alone=True),
            [rules.CONSULT_ENDED],
            [rules.REQUEUE_CALLER],
        ),
    ],
)
def test_after_reconnect_carries_on_or_settles(state, seen, facts, actions):
    got, extra = rules.after_reconnect(state, seen)
    assert [f for f, _ in got] == facts
    assert extra == actions
    for fact, detail in got:
        if fact == rules.CONSULT_ENDED:
            assert detail == rules.AWAY


def show(channel, *, state="6", bridge="", app="", linkedid=LINKED):
    return Message(
        {
            "Event": "CoreShowChannel",
            "Channel": channel,
            "ChannelState": state,
            "BridgeId": bridge,
            "Application": app,
            "Linkedid": linkedid,
        }
    )


async def test_reconnect_caller_gone_ends_the_consult_leg_and_records_it(desk):
    await desk.request(LINKED, "police", "start")
    _ringing(desk)
    # While the link was down the caller hung up; the consultation still rings.
    desk.reconcile(
        [
            show(AGENT, app="AppQueue", bridge="b1"),
            show(LOCAL1, state="5"),
            show(LOCAL2, app="Dial"),
            show(TARGET, state="5"),
        ]
    )
    await asyncio.sleep(0.05)
    hangups = [h["Channel"] for name, h in desk.session.actions if name == "Hangup"]
    assert hangups == [LOCAL1, TARGET, AGENT]
    segments = [d for k, d in desk.tracker.notes if k == "transfer"]
    assert [s["outcome"] for s in segments] == ["abandoned"]
    assert LINKED not in desk.running


async def test_reconnect_finds_consult_channels_it_never_saw(desk):
    await desk.request(LINKED, "police", "start")
    # The link dropped before Newchannel: the listing names the legs.
    desk.reconcile(
        [
            show(CALLER, bridge="b1", app="Queue"),
            show(AGENT, bridge="b2", app="AppQueue"),
            show(LOCAL1, bridge="b2"),
            show(LOCAL2, bridge="b3", app="Dial"),
            show(TARGET, bridge="b3", app="AppDial"),
            show("PJSIP/trunk-110-00000099", linkedid="other"),
        ]
    )
    running = desk.running[LINKED]
    assert running.transfer.state == "consulting"  # 110 answered meanwhile
    assert running.consult == [LOCAL1, LOCAL2, TARGET]
    await desk.request(LINKED, "police", "abort")
    await asyncio.sleep(0.05)
    hangups = [h["Channel"] for name, h in desk.session.actions if name == "Hangup"]
    assert hangups == [LOCAL1, TARGET]


async def test_reconnect_consult_gone_agent_back_is_recorded(desk):
    await desk.request(LINKED, "police", "start")
    _ringing(desk)
    desk.reconcile(
        [
            show(CALLER, bridge="b1", app="Queue"),
            show(AGENT, bridge="b1", app="AppQueue"),
        ]
    )
    await asyncio.sleep(0.05)
    segments = [d for k, d in desk.tracker.notes if k == "transfer"]
    assert [(s["outcome"], s["reason"]) for s in segments] == [
        ("unreachable", rules.AWAY)
    ]
    assert segments[0]["caller_with"] == "6001"
    assert not [n for n, _ in desk.session.actions if n in ("Hangup", "Redirect")]


async def test_reconnect_caller_left_alone_goes_back_to_the_queue(desk):
    await desk.request(LINKED, "police", "start")
    _ringing(desk)
    desk.handle(ev("Hangup", Channel=AGENT))  # the agent left while 110 rang
    desk.find_call(LINKED).queue = "general"
    # 110 never answered; Asterisk rings the agent again (recall) and the
    # caller is alone on hold.
    desk.reconcile([show(CALLER, bridge="b1", app="Queue")])
    await asyncio.sleep(0.05)
    redirects = [h for name, h in desk.session.actions if name == "Redirect"]
    assert redirects == [
        {
            "Channel": CALLER,
            "Context": "yht-hotline",
            "Exten": "12345",
            "Priority": "requeue",
        }
    ]
    segments = [d for k, d in desk.tracker.notes if k == "transfer"]
    assert [(s["outcome"], s["requeued"]) for s in segments] == [("unreachable", True)]
    assert segments[0]["caller_with"] == "general queue"


async def test_resync_lists_channels_and_leaves_a_live_consultation(desk):
    await desk.request(LINKED, "police", "start")
    _ringing(desk)
    listing = [
        show(CALLER, bridge="b1", app="Queue"),
        show(AGENT, bridge="b2", app="AppQueue"),
        show(LOCAL1, state="5", bridge="b2"),
        show(LOCAL2, state="4", app="Dial"),
        show(TARGET, state="5"),
    ]

    async def action(name, headers=None, **kw):
        desk.session.actions.append((name, dict(headers or {})))
        response = Message({"Response": "Success"})
        response.events = listing
        return response

    desk.session.action = action
    await desk.resync()
    assert [n for n, _ in desk.session.actions][-1] == "CoreShowChannels"
    assert desk.running[LINKED].transfer.state == "dialing"
    assert not [d for k, d in desk.tracker.notes if k == "transfer"]


async def test_a_desk_transfer_records_both_agents_segments_case_16(desk):
    (psych,) = parse_targets({"targets": [{"name": "psych-desk", "desk": "psych"}]})
    desk.targets[psych.name] = psych
    desk.find_call(LINKED).queue = "general"
    await desk.request(LINKED, psych.name, "start")
    leg = "Local/psych@yht-transfer-desk-00000001"
    second = "PJSIP/6002-00000040"
    desk.handle(ev("Newchannel", Channel=LOCAL1))
    desk.handle(ev("Newchannel", Channel=LOCAL2))
    desk.handle(ev("DialBegin", Channel=LOCAL2, DestChannel=f"{leg};1"))
    # The desk's queue offers the consultation to one of its agents.
    desk.handle(
        ev(
            "AgentConnect",
            Channel=f"{leg};2",
            DestChannel=second,
            Interface="PJSIP/6002",
            Queue="psych",
        )
    )
    # Not the call's agent yet: the first agent still owns the caller.
    assert desk.agent_legs[LINKED] == (AGENT, "6001")
    desk.handle(
        ev("DialEnd", Channel=LOCAL2, DestChannel=f"{leg};1", DialStatus="ANSWER")
    )
    desk.handle(
        ev(
            "AttendedTransfer",
            OrigTransfererChannel=AGENT,
            OrigTransfererLinkedid=LINKED,
            Result="Success",
            DestType="Link",
        )
    )
    assert desk.agent_legs[LINKED] == (second, "6002")
    desk.handle(ev("Hangup", Channel=CALLER, Cause="16"))
    await asyncio.sleep(0.05)
    parts = [d for k, d in desk.tracker.notes if k == "agent_segment"]
    assert [(p["agent"], p["desk"]) for p in parts] == [
        ("6001", "general"),
        ("6002", "psych"),
    ]
    (segment,) = [d for k, d in desk.tracker.notes if k == "transfer"]
    assert (segment["outcome"], segment["desk_agent"]) == ("completed", "6002")
