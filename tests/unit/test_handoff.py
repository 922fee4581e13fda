"""The hand-off record and the target's signed updates (issue 5)."""

from __future__ import annotations

import json
import secrets
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ivr.handoff import Handoff, HandoffError, handoff_record, sign, webhook_body
from ivr.tickets import TicketStore
from ivr.web.app import make_app
from ivr.web.auth import Role, TokenBook
from ivr.web.transfer_routes import HANDOFF, TRANSFER_OPERATIONS, attach
from routing.transfer import Target

SECRET = "s3cret-for-tests"
POLICE = Target(
    "police",
    "110",
    "PJSIP/trunk-110",
    handoff_topic="handoff/police",
    webhook_secret_env="YHT_TEST_POLICE_SECRET",
    show_caller_number=True,
)
WATER = Target("water", "water company", "PJSIP/trunk-water", handoff_topic="handoff/w")


class Bus:
    def __init__(self):
        self.events = []

    def publish(self, type, topic, data, **kw):
        self.events.append((type, topic, data, kw))

    def subscribe(self, topic, handler):
        pass


@pytest.fixture
async def handoff(tmp_path, monkeypatch):
    monkeypatch.setenv("YHT_TEST_POLICE_SECRET", SECRET)
    store = await TicketStore.open(tmp_path / "tickets.db")
    ticket = await store.open_ticket(
        linkedid="1.1",
        channel="PJSIP/pstn-1",
        caller_number="13800000001",
        arrived_at="2026-12-03T08:00:00.000Z",
    )
    await store.update("1.1", desk="general")
    yield Handoff(store, Bus(), (POLICE, WATER), tmp_path), ticket["number"]
    await store.close()


def test_the_record_masks_the_number_unless_the_target_may_see_it():
    ticket = {
        "number": "T1",
        "caller_number": "13800000001",
        "category": "noise",
        "address": "1 Road",
        "content": "loud party",
        "caller_name": "Li",
    }
    assert handoff_record(ticket, POLICE, "x")["caller_number"] == "13800000001"
    water = handoff_record(ticket, WATER, "x")
    assert water["caller_number"] == "138****0001"
    assert "caller_name" not in water and water["content"] == "loud party"


async def test_send_publishes_at_qos_1_and_notes_the_ticket(handoff):
    desk, number = handoff
    record = await desk.send("1.1", "police", "1.1-1")
    assert record["ticket"] == number
    type, topic, _data, kw = desk.bus.events[-1]
    assert (type, topic, kw["qos"]) == ("handoff.record", "handoff/police", 1)
    ticket = await desk.store.get(number)
    assert ticket["timeline"][-1]["kind"] == "handoff_sent"


async def test_an_update_is_applied_once(handoff):
    desk, number = handoff
    update = {"id": "u1", "ticket": number, "status": "accepted", "reference": "R9"}
    with pytest.raises(HandoffError, match="not handed off to police"):
        await desk.apply("police", update, source="mqtt")
    await desk.send("1.1", "police", "1.1-1")
    assert await desk.apply("police", update, source="mqtt") is True
    assert await desk.apply("police", update, source="mqtt") is False
    timeline = (await desk.store.get(number))["timeline"]
    updates = [e for e in timeline if e["kind"] == "handoff_update"]
    assert len(updates) == 1 and updates[0]["reference"] == "R9"
    with pytest.raises(HandoffError, match="status 'lost'"):
        await desk.apply("police", {**update, "id": "u2", "status": "lost"}, source="x")


def test_verify_refuses_unsigned_forged_and_stale(handoff):
    desk, _ = handoff
    body = b'{"id":"u1"}'
    now = int(time.time())
    good = {
        "X-Yht-Timestamp": str(now),
        "X-Yht-Signature": sign(SECRET.encode(), str(now), body),
    }
    desk.verify("police", good, body)
    for headers, error in [
        ({}, "unsigned"),
        ({**good, "X-Yht-Signature": sign(b"other", str(now), body)}, "bad_signature"),
        ({**good, "X-Yht-Timestamp": str(now - 3600)}, "stale"),
    ]:
        with pytest.raises(HandoffError) as exc:
            desk.verify("police", headers, body)
        assert (exc.value.status, exc.value.error) == (401, error)
    with pytest.raises(HandoffError) as exc:  # no secret configured for water
        desk.verify("water", good, body)
    assert exc.value.status == 401


def test_a_non_ascii_signature_is_a_bad_signature_not_a_crash(handoff):
    desk, _ = handoff
    body = b'{"id":"u1"}'
    stamp = str(int(time.time()))
    # Same length as a real one, so compare_digest sees two str of equal size.
    forged = "sha256=" + "\u00e9" * 64
    with pytest.raises(HandoffError) as exc:
        desk.verify(
            "police", {"X-Yht-Timestamp": stamp, "X-Yht-Signature": forged}, body
        )
    assert (exc.value.status, exc.value.error) == (401, "bad_signature")


def test_a_secret_file_created_or_rotated_later_is_used(tmp_path):
    target = Target(
        "gas", "gas company", "PJSIP/trunk-gas", webhook_secret_file="gas.secret"
    )
    desk = Handoff(None, Bus(), (target,), tmp_path)
    body = b'{"id":"u1"}'
    stamp = str(int(time.time()))

    def signed(secret: bytes) -> dict:
        return {
            "X-Yht-Timestamp": stamp,
            "X-Yht-Signature": sign(secret, stamp, body),
        }

    with pytest.raises(HandoffError) as exc:
        desk.verify("gas", signed(b"first"), body)
    assert exc.value.error == "no_secret"
    (tmp_path / "gas.secret").write_text("first\n", encoding="utf-8")
    desk.verify("gas", signed(b"first"), body)
    (tmp_path / "gas.secret").write_text("second\n", encoding="utf-8")
    desk.verify("gas", signed(b"second"), body)
    with pytest.raises(HandoffError) as exc:
        desk.verify("gas", signed(b"first"), body)
    assert exc.value.error == "bad_signature"


@pytest.fixture
async def client(handoff, tmp_path):
    from ivr.dialplan_live import LivePlan
    from ivr.dialplan_store import DialplanStore
    from ivr.prompt_library import PromptLibrary
    from routing.dialplan import parse_dialplan
    from tests.support.admin import PLAN

    desk, number = handoff
    tokens = {role: secrets.token_urlsafe(32) for role in Role}
    book = TokenBook((r, r.name.lower(), t) for r, t in tokens.items())
    live = LivePlan(DialplanStore(tmp_path / "versions"), parse_dialplan(PLAN))
    await live.open(PLAN, "12345.yaml")
    library = PromptLibrary(tmp_path / "prompts", tmp_path / "sounds")
    app = make_app(live, library, book, extra=TRANSFER_OPERATIONS)
    attach(app, None, desk)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client, number, {"Authorization": f"Bearer {tokens[Role.AGENT]}"}


async def test_webhook_applies_signed_updates_and_refuses_the_rest(client):
    http, number, _ = client
    await http.app[HANDOFF].send(number, "police", "1.1-1")
    body = webhook_body(
        {"id": "w1", "ticket": number, "status": "dispatched", "reference": "JJ1"}
    )
    stamp = str(int(time.time()))
    signed = {
        "X-Yht-Timestamp": stamp,
        "X-Yht-Signature": sign(SECRET.encode(), stamp, body),
        "Content-Type": "application/json",
    }
    url = "/handoff/police/updates"
    response = await http.post(url, data=body)
    assert response.status == 401  # unsigned
    forged = {**signed, "X-Yht-Signature": sign(b"guess", stamp, body)}
    assert (await http.post(url, data=body, headers=forged)).status == 401
    response = await http.post(url, data=body, headers=signed)
    assert response.status == 200, await response.text()
    replay = await http.post(url, data=body, headers=signed)
    assert replay.status == 409
    assert (await replay.json())["error"] == "replayed"
    tampered = body.replace(b"dispatched", b"closed")
    assert (await http.post(url, data=tampered, headers=signed)).status == 401
    accented = {**signed, "X-Yht-Signature": "sha256=" + "\u00e9" * 64}
    response = await http.post(url, data=body, headers=accented)
    assert response.status == 401
    assert (await response.json())["error"] == "bad_signature"


async def test_transfer_route_needs_a_token_and_a_valid_action(client):
    http, number, auth = client
    url = f"/calls/{number}/transfer"
    assert (await http.post(url, json={"target": "police"})).status == 401
    response = await http.post(url, json={"action": "jump"}, headers=auth)
    assert response.status == 400
    assert json.loads(await response.text())["error"] == "bad_action"
    # No transfer desk attached in this app: the server is not running here.
    response = await http.post(url, json={"target": "police"}, headers=auth)
    assert response.status == 503


async def test_the_routes_are_in_the_openapi_document(client):
    http, _, auth = client
    document = await (await http.get("/openapi.json", headers=auth)).json()
    assert "/calls/{id}/transfer" in document["paths"]
    assert "/handoff/{target}/updates" in document["paths"]
