"""Live desk statistics and agents' states over the admin API (issue 4).

    GET  /status/desks                      every desk's figures (agent)
    GET  /status/agents                     every agent's state (supervisor)
    POST /agents/{extension}/{action}       login, logout, pause, unpause
                                            (supervisor); body {"reason": ...}

The same figures as MQTT ``ivr/status/desks/<desk>`` and ``hotline status``.
:func:`attach` gives the app the server's desk board and agents; without
them (an admin app on its own) the routes answer 503.
"""

from __future__ import annotations

from aiohttp import web

from ivr.agents import COMMANDS, AgentDesk
from ivr.desk_status import DeskBoard
from ivr.errors import AgentCommandError
from ivr.web.auth import Role, requires
from ivr.web.errors import ApiError, json_object, serving
from ivr.web.openapi import Operation

DESK_BOARD = web.AppKey("desk_board", DeskBoard)
AGENT_DESK = web.AppKey("agent_desk", AgentDesk)


def attach(app: web.Application, desks: DeskBoard, agents: AgentDesk) -> None:
    app[DESK_BOARD] = desks
    app[AGENT_DESK] = agents


@requires(Role.AGENT)
async def desks(request: web.Request) -> web.Response:
    return web.json_response({"desks": serving(request, DESK_BOARD).snapshot()})


# Every agent's pauses and reasons: for supervisors (the agents page). The
# agent desktop reads only its own state, from /ui/api/desk.
@requires(Role.SUPERVISOR)
async def agents(request: web.Request) -> web.Response:
    desk = serving(request, AGENT_DESK)
    return web.json_response({"agents": desk.states()})


@requires(Role.SUPERVISOR)
async def agent_action(request: web.Request) -> web.Response:
    action = request.match_info["action"]
    if action not in COMMANDS:
        raise ApiError(
            404, "unknown_action", f"no agent action {action!r}", {"actions": COMMANDS}
        )
    reason = ""
    if request.can_read_body:
        body = await json_object(request)
        reason = str(body.get("reason") or "")
    desk = serving(request, AGENT_DESK)
    extension = request.match_info["extension"]
    if extension not in desk.book.agents:
        raise ApiError(404, "no_such_agent", f"no agent {extension!r}")
    try:
        state = await desk.command(action, extension, reason, source="api")
    except AgentCommandError as exc:
        raise ApiError(400, "refused", str(exc)) from None
    return web.json_response(state)


STATUS_OPERATIONS = (
    Operation("GET", "/status/desks", desks, "Live desk statistics"),
    Operation("GET", "/status/agents", agents, "Agents' states"),
    Operation(
        "POST",
        "/agents/{extension:[0-9]+}/{action:[a-z]+}",
        agent_action,
        "Log an agent in or out, pause or unpause",
        body="json",
    ),
)
