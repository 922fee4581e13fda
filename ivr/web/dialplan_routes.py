"""Dial plan routes: versions, validate, diff, simulate, publish, roll back.

Bodies that carry a dial plan are the YAML text itself (any text content
type, UTF-8, at most 1 MB); the author of a change is the caller's token name.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from aiohttp import web

from ivr.dialplan_notes import placeholders, plan_notes
from ivr.dialplans import MAX_BYTES
from ivr.errors import DialplanError
from ivr.web.auth import IDENTITY, Role, requires
from ivr.web.errors import ApiError
from ivr.web.keys import PLANS, PROMPTS
from routing.callers import CallerFacts, facts_for
from routing.dialplan import DialPlan, parse_dialplan
from routing.hours import BEIJING
from routing.menu import simulate


async def _yaml_body(request: web.Request) -> str:
    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise _too_large()
    data = await request.content.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise _too_large()
    if not data.strip():
        raise ApiError(400, "empty-body", "send the dial plan's YAML as the body")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ApiError(
            400, "not-utf8", f"the body is not UTF-8 text (line {line})"
        ) from None


def _too_large() -> ApiError:
    return ApiError(
        413, "payload-too-large", "a dial plan is at most 1 MB", {"limit": MAX_BYTES}
    )


async def _json_body(request: web.Request) -> dict:
    if not request.body_exists:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise ApiError(400, "invalid-json", "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid-json", "the body must be a JSON object")
    return body


def _live_number(request: web.Request) -> int:
    version = request.app[PLANS].version
    if version is None:
        raise ApiError(503, "not-ready", "the server has not loaded a dial plan yet")
    return version.number


async def _notes(request: web.Request, plan: DialPlan) -> list[str]:
    recorded = await asyncio.to_thread(request.app[PROMPTS].recorded)
    return plan_notes(plan, recorded, datetime.now(BEIJING))


def _version_number(request: web.Request) -> int:
    word = request.match_info["version"]
    return _live_number(request) if word == "live" else int(word)


@requires(Role.AGENT)
async def list_versions(request: web.Request) -> web.Response:
    plans = request.app[PLANS]
    versions = await asyncio.to_thread(plans.store.versions)
    return web.json_response(
        {
            "live": plans.version.number if plans.version else None,
            "versions": [v.to_dict() for v in reversed(versions)],
        }
    )


@requires(Role.AGENT)
async def get_version(request: web.Request) -> web.Response:
    store = request.app[PLANS].store
    number = _version_number(request)
    version = await asyncio.to_thread(store.get, number)
    text = await asyncio.to_thread(store.text, number)
    diff = await asyncio.to_thread(store.diff, number)
    return web.json_response(
        {
            "version": version.to_dict(),
            "live": number == _live_number(request),
            "text": text,
            "diff": diff,
        }
    )


@requires(Role.AGENT)
async def get_version_text(request: web.Request) -> web.Response:
    store = request.app[PLANS].store
    text = await asyncio.to_thread(store.text, _version_number(request))
    return web.Response(text=text, content_type="application/yaml", charset="utf-8")


@requires(Role.SUPERVISOR)
async def validate(request: web.Request) -> web.Response:
    text = await _yaml_body(request)
    plan = await asyncio.to_thread(parse_dialplan, text, "dialplan.yaml")
    recorded = await asyncio.to_thread(request.app[PROMPTS].recorded)
    return web.json_response(
        {
            "valid": True,
            "summary": f"{len(plan.menus)} menus, {len(plan.desks)} desks",
            "placeholders": placeholders(plan, recorded),
            "notes": await _notes(request, plan),
        }
    )


@requires(Role.SUPERVISOR)
async def diff_against_live(request: web.Request) -> web.Response:
    text = await _yaml_body(request)
    plans = request.app[PLANS]
    live = _live_number(request)
    diff = await asyncio.to_thread(plans.store.diff_against, live, text)
    problems: list[str] = []
    try:
        await asyncio.to_thread(parse_dialplan, text, "dialplan.yaml")
    except DialplanError as exc:  # the diff is still worth showing
        problems = exc.problems
    return web.json_response(
        {
            "live": live,
            "changed": bool(diff),
            "diff": diff,
            "valid": not problems,
            "problems": problems,
        }
    )


@requires(Role.ADMIN)
async def publish(request: web.Request) -> web.Response:
    text = await _yaml_body(request)
    author = request[IDENTITY].name
    published = await request.app[PLANS].publish(text, author, source="api")
    return web.json_response(
        {
            "version": published.version.to_dict(),
            "created": published.created,
            "notes": await _notes(request, published.plan),
        },
        status=201 if published.created else 200,
    )


@requires(Role.ADMIN)
async def rollback(request: web.Request) -> web.Response:
    body = await _json_body(request)
    to = body.get("to")
    if to is not None and (not isinstance(to, int) or isinstance(to, bool)):
        raise ApiError(400, "bad-request", "'to' must be a version number")
    published = await request.app[PLANS].rollback(request[IDENTITY].name, to)
    return web.json_response(
        {"version": published.version.to_dict(), "restores": published.version.restores}
    )


@requires(Role.SUPERVISOR)
async def simulate_call(request: web.Request) -> web.Response:
    body = await _json_body(request)
    plans = request.app[PLANS]
    plan = plans.plan
    if "text" in body:
        if not isinstance(body["text"], str):
            raise ApiError(400, "bad-request", "'text' must be the dial plan's YAML")
        plan = await asyncio.to_thread(parse_dialplan, body["text"], "dialplan.yaml")
    keys = _keys(body.get("keys", []))
    at = _moment(body.get("at"))
    facts = _facts(plan, body, at)
    language = body.get("language", "zh")
    if language not in plan.languages:
        raise ApiError(
            400,
            "bad-request",
            f"language must be one of {', '.join(plan.languages)}",
        )
    lines = simulate(plan, keys, language, caller=facts, now=at)
    return web.json_response(
        {
            "at": at.isoformat(),
            "caller": {
                "is_enterprise": facts.is_enterprise,
                "recent_desk": facts.recent_desk,
            },
            "lines": lines,
        }
    )


def _keys(value: object) -> list[str | None]:
    if isinstance(value, str):
        value = value.split(",") if value else []
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise ApiError(400, "bad-request", '\'keys\' is a list such as ["2", "-"]')
    return [None if key in ("-", "") else key for key in value]


def _moment(value: object) -> datetime:
    if value is None:
        return datetime.now(BEIJING)
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ApiError(
            400, "bad-request", "'at' is a date and time such as 2026-10-01T10:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=BEIJING)


def _facts(plan: DialPlan, body: dict, at: datetime) -> CallerFacts:
    caller = body.get("caller", "")
    recent = body.get("recent_desk")
    if not isinstance(caller, str) or (
        recent is not None and not isinstance(recent, str)
    ):
        raise ApiError(400, "bad-request", "'caller' and 'recent_desk' are text")
    facts = facts_for(plan, caller, [], at)
    try:
        return CallerFacts(is_enterprise=facts.is_enterprise, recent_desk=recent)
    except ValueError as exc:
        raise ApiError(400, "bad-request", str(exc)) from None
