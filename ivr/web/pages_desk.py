"""The agent desktop's own routes: the agent's state and call, and its moves.

An agent account acts on its own extension only (``hotline users add zhao
--role agent --agent 6001``): log in to its desks, pause with a reason,
unpause, through :class:`ivr.agents.AgentDesk` like the phone's feature
codes and ``hotline agent``. The caller's history, the ticket form and the
warm transfer are the tickets and transfer API handlers themselves, wrapped
for the session in :mod:`ivr.web.pages`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from ivr import log
from ivr.agents import COMMANDS
from ivr.errors import AgentCommandError
from ivr.log import mask_number
from ivr.web.errors import ApiError, json_body, serving
from ivr.web.sessions import SESSION
from ivr.web.status_routes import AGENT_DESK
from routing.agents import PHONES

TRACKER = web.AppKey("desk_call_tracker", object)
SOFTPHONE = web.AppKey("desk_softphone", object)
TRANSFER_TARGETS = web.AppKey("desk_transfer_targets", tuple)
MOVES = COMMANDS  # what the desktop may do: what `hotline agent` does


@dataclass(frozen=True)
class Softphone:
    """Where the browser phones register, and their SIP passwords.

    Given by whoever renders Asterisk's configuration (the lab, ``make demo``):
    the server itself does not keep the agents' SIP passwords. ``url`` is a
    fixed WebSocket address (a TLS proxy's ``wss://...``); empty, the page's
    own host name with Asterisk's HTTP ``port`` is used.
    """

    port: int
    passwords: Mapping[str, str] = field(repr=False)
    url: str = ""

    def address(self, host: str) -> str:
        return self.url or f"ws://{host}:{self.port}/ws"


REASONS = ("break", "lunch", "meeting", "training")


def _extension(request: web.Request) -> str:
    extension = request[SESSION].account.agent
    if not extension:
        raise ApiError(
            409, "no-extension", "this account has no agent extension (--agent)"
        )
    return extension


def current_call(tracker, extension: str) -> dict | None:
    """The call ``extension`` is talking on, as the desktop shows it."""
    if tracker is None:
        return None
    call = tracker.answered_by(extension)
    if call is not None:
        return {
            "id": call.linkedid,
            "ticket": call.ticket_number,
            # Masked like the tickets API does for the agent role.
            "caller": mask_number(call.caller_number),
            "name": call.caller_name,
            "desk": call.desk,
            "repeat_of": call.repeat_of,
        }
    return None


async def desk_state(request: web.Request) -> web.Response:
    extension = _extension(request)
    desk = serving(request, AGENT_DESK)
    agent = desk.book.agents.get(extension)
    if agent is None:
        raise ApiError(404, "no_such_agent", f"no agent {extension!r} in the server")
    return web.json_response(
        {
            "agent": desk.state_of(agent),
            "call": current_call(request.app.get(TRACKER), extension),
        }
    )


async def desk_move(request: web.Request) -> web.Response:
    extension = _extension(request)
    move = request.match_info["move"]
    if move not in MOVES:
        raise ApiError(404, "unknown_action", f"no move {move!r}", {"moves": MOVES})
    reason = ""
    if request.can_read_body:
        body = await json_body(request)
        reason = str(body.get("reason") or "") if isinstance(body, dict) else ""
    try:
        state = await serving(request, AGENT_DESK).command(
            move, extension, reason, source="web"
        )
    except AgentCommandError as exc:
        raise ApiError(400, "refused", str(exc)) from None
    return web.json_response(state)


async def softphone_account(request: web.Request) -> web.Response:
    """The browser phone's address and SIP account of the session's own
    extension (POST with the CSRF token; never cached, never logged)."""
    extension = _extension(request)
    softphone = request.app.get(SOFTPHONE)
    password = softphone.passwords.get(extension) if softphone else None
    if not password:
        raise ApiError(
            404,
            "no_softphone",
            f"the server holds no browser phone account for extension {extension}: "
            "type the address and the SIP password",
        )
    return web.json_response(
        {
            "server": softphone.address(request.url.host or "127.0.0.1"),
            "user": f"web-{extension}",
            "password": password,
        },
        headers={"Cache-Control": "no-store"},
    )


async def desk_phone(request: web.Request) -> web.Response:
    """Take queue calls on the SIP phone or the browser phone:
    ``{"phone": "web"}`` or ``{"phone": "sip"}``."""
    extension = _extension(request)
    body = await json_body(request)
    phone = body.get("phone") if isinstance(body, dict) else None
    if phone not in PHONES:
        raise ApiError(
            400,
            "bad_phone",
            f"body field 'phone' is {phone!r}: use one of {', '.join(PHONES)}",
        )
    desk = serving(request, AGENT_DESK)
    try:
        state = await desk.use_phone(extension, phone, source="web")
    except AgentCommandError as exc:
        raise ApiError(409, "refused", str(exc)) from None
    return web.json_response(state)


async def back_to_sip_phone(request: web.Request, extension: str | None) -> None:
    """At the page's logout: the browser phone goes with the page, so the
    agent's queue calls ring the SIP phone again."""
    desk = request.app.get(AGENT_DESK)
    agent = desk.book.agents.get(extension) if desk and extension else None
    if agent is None or agent.phone == "sip":
        return
    try:
        await desk.use_phone(extension, "sip", source="web logout")
    except AgentCommandError as exc:  # on a call: the agent switches after it
        log.web.warning("agent %s stays on the browser phone: %s", extension, exc)
