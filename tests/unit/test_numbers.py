"""Caller numbers that may go into a Dial() string (routing.numbers), and a
callback refused for any other number."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from panoramisk.message import Message

from ivr.callbacks import Callbacks
from ivr.calls import Call
from routing.numbers import dialable_number


@pytest.mark.parametrize("number", ["13800000001", "+8613800000001", "110", "0"])
def test_plain_numbers_are_dialable(number):
    assert dialable_number(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "",
        "+",
        "138,M(evil)",  # Dial() options
        "138&PJSIP/6001",  # another destination
        "138/x",
        "138 0001",
        "13800000001\n",
        "1" * 21,
        "++138",
        "１３８",  # full-width digits: \d would take them
        "anonymous",
        None,
        138,
    ],
)
def test_anything_else_is_refused_naming_the_value(number):
    with pytest.raises(ValueError, match="is not dialable") as exc:
        dialable_number(number)
    assert repr(number) in str(exc.value)


# -- a callback for an undialable number --------------------------------------

CALLER = "PJSIP/pstn-00000001"


class Session:
    def __init__(self):
        self.originated: list[dict] = []

    async def action(self, name, headers=None, **kw):
        return Message({"Response": "Success"})

    async def originate(self, headers, timeout=None):
        self.originated.append(headers)
        return SimpleNamespace(ok=True, reason="")


class Tracker:
    def __init__(self, call):
        self.call = call
        self.notes: list[tuple[str, dict]] = []

    def by_channel(self, channel):
        return self.call if channel == self.call.channel else None

    def callback_requested(self, call, data):
        self.notes.append(("callback_requested", data))

    def note(self, call, kind, data):
        self.notes.append((kind, data))


async def request(number: str) -> tuple[Callbacks, Session, Tracker]:
    call = Call("L1", CALLER, number, "", "now", queue="general")
    call.ticket_number = "T1"
    session, tracker = Session(), Tracker(call)
    callbacks = Callbacks(session, tracker, lambda n: f"PJSIP/{n}@pstn-out")
    event = {"Event": "UserEvent", "UserEvent": "YhtCallback", "Channel": CALLER}
    callbacks.handle(Message(event))
    for _ in range(10):
        await asyncio.sleep(0)
    return callbacks, session, tracker


async def test_a_callback_dials_a_plain_number():
    _, session, tracker = await request("13800000001")
    [headers] = session.originated
    assert "YHT_CALLBACK_DIAL=PJSIP/13800000001@pstn-out" in headers["Variable"]
    assert [kind for kind, _ in tracker.notes][-1] == "callback_queued"


async def test_a_callback_for_an_undialable_number_is_refused_on_the_ticket(caplog):
    number = "13800000001&PJSIP/6001,M(evil)"
    with caplog.at_level(logging.WARNING):
        callbacks, session, tracker = await request(number)
    assert session.originated == []  # nothing reached Dial()
    assert callbacks.pending == {}
    kind, data = tracker.notes[-1]
    assert kind == "callback_failed"
    assert data["status"] == "not placed: not dialable"
    assert "not dialable" in caplog.text and "138****" in caplog.text
    assert number not in caplog.text and "13800000001" not in caplog.text
