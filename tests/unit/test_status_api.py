"""``GET /status/desks``, ``GET /status/agents`` and agent actions over the API."""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import pytest
from aiohttp.test_utils import TestClient, TestServer
from panoramisk.message import Message

from ivr.agents import AgentDesk
from ivr.config import Agent
from ivr.desk_status import DeskBoard
from ivr.dialplan_live import LivePlan
from ivr.dialplan_store import DialplanStore
from ivr.prompt_library import PromptLibrary
from ivr.web.app import make_app
from ivr.web.auth import Role, TokenBook
from ivr.web.status_routes import STATUS_OPERATIONS, attach
from routing.agents import AgentBook
from routing.dialplan import parse_dialplan
from tests.support.admin import PLAN


class Session:
    async def action(self, name, headers=None, **kw):
        response = Message({"Response": "Success"})
        response.events = []
        return response


class Bus:
    def publish(self, *args, **kw):
        pass


class Tracker:
    store = None

    def by_channel(self, channel):
        return None


@pytest.fixture
async def api(tmp_path):
    plan = parse_dialplan(PLAN)
    tokens = {role: secrets.token_urlsafe(32) for role in Role}
    book = TokenBook((r, r.name.lower(), t) for r, t in tokens.items())
    live = LivePlan(DialplanStore(tmp_path / "versions"), plan)
    await live.open(PLAN, "12345.yaml")
    library = PromptLibrary(tmp_path / "prompts", tmp_path / "sounds")
    app = make_app(live, library, book, extra=STATUS_OPERATIONS)
    agents = AgentDesk(
        Session(),
        Bus(),
        AgentBook(
            [Agent("6001", "Zhang", {"business": 1, "general": 2})],
            {d: d for d in plan.desks},
        ),
    )
    worker = asyncio.create_task(agents.run())
    await agents.command("login", "6001")
    board = DeskBoard(Bus(), Tracker(), agents, lambda: plan)
    board.handle(
        Message(
            {
                "Event": "QueueCallerJoin",
                "Channel": "PJSIP/pstn-1",
                "Linkedid": "L1",
                "Queue": "business",
            }
        )
    )
    attach(app, board, agents)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client, {r: {"Authorization": f"Bearer {t}"} for r, t in tokens.items()}
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker


async def test_desks_show_waiting_callers_and_agents(api):
    client, auth = api
    response = await client.get("/status/desks", headers=auth[Role.AGENT])
    assert response.status == 200
    desks = (await response.json())["desks"]
    assert set(desks) == {"general", "business", "psych"}
    business = desks["business"]
    assert business["waiting"] == 1 and business["name"] == "营商环境"
    assert business["agents"]["available"] == 1
    assert desks["psych"]["agents"] == dict.fromkeys(
        ("available", "busy", "wrap_up", "paused", "unavailable"), 0
    )


async def test_a_supervisor_pauses_an_agent_and_supervisors_see_it(api):
    client, auth = api
    response = await client.post(
        "/agents/6001/pause", json={"reason": "training"}, headers=auth[Role.AGENT]
    )
    assert response.status == 403
    response = await client.post(
        "/agents/6001/pause", json={"reason": "training"}, headers=auth[Role.SUPERVISOR]
    )
    assert response.status == 200
    assert (await response.json())["pause_reason"] == "training"
    # Other agents' pauses and reasons are the supervisors' to see.
    response = await client.get("/status/agents", headers=auth[Role.AGENT])
    assert response.status == 403
    response = await client.get("/status/agents", headers=auth[Role.SUPERVISOR])
    listed = await response.json()
    assert [(a["agent"], a["status"]) for a in listed["agents"]] == [("6001", "paused")]


async def test_unknown_agents_and_actions_in_the_one_error_shape(api):
    client, auth = api
    for path, status, error in (
        ("/agents/6099/pause", 404, "no_such_agent"),
        ("/agents/6001/dance", 404, "unknown_action"),
    ):
        response = await client.post(path, headers=auth[Role.ADMIN])
        body = await response.json()
        assert response.status == status and body["error"] == error
        assert set(body) == {"status", "message", "error", "details"}
    response = await client.post(
        "/agents/6001/pause", json={"reason": "wrap-up"}, headers=auth[Role.ADMIN]
    )
    assert response.status == 400
    assert (await response.json())["error"] == "refused"
