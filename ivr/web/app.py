"""The admin API application: its routes, state and ordered start and stop.

:func:`make_app` builds it from the live plan, the prompt library and the
token book; :class:`AdminServer` binds it to a host and port (127.0.0.1
unless configured). Start-up runs the cleanup contexts in order and shutdown
in reverse: conversions still running finish before the staging folders are
swept, and the last log line says the API is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from ivr import log
from ivr.dialplan_live import LivePlan
from ivr.prompt_convert import MAX_UPLOAD_BYTES
from ivr.prompt_library import PromptLibrary
from ivr.web import dialplan_routes as plans
from ivr.web import prompt_routes as prompts
from ivr.web.auth import TokenBook, auth_middleware, public
from ivr.web.errors import error_middleware
from ivr.web.keys import CONVERSION_SLOTS, CONVERSIONS, PLANS, PROMPTS, TOKENS
from ivr.web.openapi import Operation, openapi_document

VERSION = "{version:(live|[0-9]+)}"
# Loose here (the router's patterns cannot hold braces); handlers check names.
PROMPT = "{language:[a-z]+}/{name:[a-z0-9_-]+}"

# The one list of routes: aiohttp's router and the OpenAPI document both use it.
OPERATIONS = (
    Operation("GET", "/dialplans", plans.list_versions, "Every published version"),
    Operation("GET", f"/dialplans/{VERSION}", plans.get_version, "One version"),
    Operation(
        "GET", f"/dialplans/{VERSION}.yaml", plans.get_version_text, "Its YAML text"
    ),
    Operation(
        "POST", "/dialplans/validate", plans.validate, "Validate a plan", body="yaml"
    ),
    Operation(
        "POST",
        "/dialplans/diff",
        plans.diff_against_live,
        "Diff against live",
        body="yaml",
    ),
    Operation(
        "POST",
        "/dialplans/simulate",
        plans.simulate_call,
        "Dry-run a call",
        body="json",
    ),
    Operation("POST", "/dialplans", plans.publish, "Publish a plan", body="yaml"),
    Operation("POST", "/dialplans/rollback", plans.rollback, "Roll back", body="json"),
    Operation("GET", "/prompts", prompts.list_prompts, "Recorded prompts"),
    Operation(
        "POST",
        "/prompts",
        prompts.upload_prompt,
        "Upload a recording",
        body="multipart",
    ),
    Operation("GET", f"/prompts/{PROMPT}.wav", prompts.play_prompt, "Play a recording"),
    Operation(
        "DELETE", f"/prompts/{PROMPT}", prompts.delete_prompt, "Delete a recording"
    ),
)


@public
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(request.app[ROUTES]))


ROUTES = web.AppKey("routes", tuple)


def make_app(
    live: LivePlan,
    library: PromptLibrary,
    tokens: TokenBook,
    *,
    conversions: int = CONVERSIONS,
    extra: tuple[Operation, ...] = (),
) -> web.Application:
    """The admin app; ``extra`` routes (the tickets API) are served and
    documented in OpenAPI alongside the app's own."""
    app = web.Application(
        middlewares=[error_middleware, auth_middleware(tokens)],
        # Dial plans are read with their own 1 MB limit; this bounds the rest.
        client_max_size=MAX_UPLOAD_BYTES + 1024 * 1024,
    )
    app[PLANS] = live
    app[PROMPTS] = library
    app[TOKENS] = tokens
    app.cleanup_ctx.append(_announce)
    app.cleanup_ctx.append(_staging)
    app.cleanup_ctx.append(_conversion_slots(conversions))
    app[ROUTES] = OPERATIONS + extra
    app.router.add_get("/openapi.json", openapi)
    for operation in app[ROUTES]:
        app.router.add_route(operation.method, operation.path, operation.handler)
    return app


async def _announce(app: web.Application) -> AsyncIterator[None]:
    log.web.info("admin API up: %d tokens", len(app[TOKENS]))
    yield
    log.web.info("admin API stopped")


async def _staging(app: web.Application) -> AsyncIterator[None]:
    library = app[PROMPTS]
    await asyncio.to_thread(library.sweep_staging)
    yield
    await asyncio.to_thread(library.sweep_staging)


def _conversion_slots(count: int):
    async def slots(app: web.Application) -> AsyncIterator[None]:
        semaphore = asyncio.Semaphore(count)
        app[CONVERSION_SLOTS] = semaphore
        yield
        # Let conversions under way finish: their threads cannot be cancelled.
        for _ in range(count):
            await semaphore.acquire()

    return slots


@dataclass
class AdminServer:
    """The admin app on a TCP socket, started and stopped by the server."""

    app: web.Application
    host: str = "127.0.0.1"
    port: int = 8345
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        from ivr.web.tickets_api import MaskedAccessLogger

        self._runner = web.AppRunner(
            self.app, access_log=log.web, access_log_class=MaskedAccessLogger
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        if sockets:
            self.port = sockets[0][1]
        log.web.info("admin API listening on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
