"""Warm transfers and hand-off updates over the admin API (issue 5).

    POST /calls/{id}/transfer          {"target": "police",
                                        "action": "start|complete|threeway|abort"}
                                       (agent); {id} is the linkedid or ticket
    POST /handoff/{target}/updates     the target platform's update, signed
                                       with HMAC-SHA256 (no bearer token)

:func:`attach` gives the app the server's transfer desk and hand-off; without
them the routes answer 503.
"""

from __future__ import annotations

import json

from aiohttp import web

from ivr.handoff import Handoff, HandoffError
from ivr.transfer import TransferDesk, TransferError
from ivr.web.auth import IDENTITY, Role, public, requires
from ivr.web.errors import ApiError, json_object, serving
from ivr.web.openapi import Operation

TRANSFER_DESK = web.AppKey("transfer_desk", TransferDesk)
HANDOFF = web.AppKey("handoff", Handoff)
ACTIONS = ("start", "complete", "threeway", "abort")
MAX_UPDATE_BYTES = 64 * 1024


def attach(app: web.Application, desk: TransferDesk, handoff: Handoff) -> None:
    app[TRANSFER_DESK] = desk
    app[HANDOFF] = handoff


@requires(Role.AGENT)
async def transfer(request: web.Request) -> web.Response:
    body = await json_object(request)
    action = str(body.get("action") or "start")
    if action not in ACTIONS:
        raise ApiError(
            400, "bad_action", f"action {action!r}", {"actions": list(ACTIONS)}
        )
    target = str(body.get("target") or "")
    if action == "start" and not target:
        raise ApiError(400, "no_target", "start needs a target")
    desk = serving(request, TRANSFER_DESK)
    identity = request[IDENTITY]
    # An agent's session acts on the agent's own call only; supervisors,
    # admins and agent-role tokens (a CTI integration) on any call.
    agent = identity.agent if identity.role == Role.AGENT else None
    try:
        result = await desk.request(
            request.match_info["id"], target, action, agent=agent
        )
    except TransferError as exc:
        raise ApiError(exc.status, exc.error, str(exc)) from None
    return web.json_response(result)


@public
async def handoff_update(request: web.Request) -> web.Response:
    handoff = serving(request, HANDOFF)
    body = await request.content.read(MAX_UPDATE_BYTES + 1)
    if len(body) > MAX_UPDATE_BYTES:
        raise ApiError(413, "too_large", "an update is at most 64 KB")
    target = request.match_info["target"]
    try:
        handoff.verify(target, request.headers, body)
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, "bad_json", "the body is not JSON") from None
        applied = await handoff.apply(target, data, source="webhook")
    except HandoffError as exc:
        raise ApiError(exc.status, exc.error, str(exc)) from None
    if not applied:
        raise ApiError(
            409, "replayed", f"update {data.get('id')!r} was applied already"
        )
    return web.json_response({"applied": True, "update": data.get("id")})


TRANSFER_OPERATIONS = (
    Operation(
        "POST",
        "/calls/{id:[A-Za-z0-9._-]+}/transfer",
        transfer,
        "Start, complete, make three-way or abort a warm transfer",
        body="json",
    ),
    Operation(
        "POST",
        "/handoff/{target:[a-z][a-z0-9_-]*}/updates",
        handoff_update,
        "An outside platform's update to a handed-off ticket (HMAC signed)",
        body="json",
    ),
)
