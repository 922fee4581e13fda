"""Every error of the admin API in one JSON shape, produced in one place::

    {"status": 404, "message": "no dial plan version 9", "error": "version-not-found",
     "details": {"version": 9}}

``error`` is a stable id clients may branch on; ``message`` is for people and
may change. Handlers raise :class:`ApiError` (or a domain error translated by
:func:`error_middleware`); nothing else builds an error response.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web

from ivr import log
from ivr.dialplan_store import NothingToRollBack, UnknownVersion
from ivr.errors import DialplanError, HotlineError
from ivr.prompt_convert import PromptRejected

# Stable ids for the errors aiohttp raises itself (routing, body size).
_BY_STATUS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
}


class ApiError(HotlineError):
    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        details: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.error = error
        self.details = dict(details or {})
        self.headers = dict(headers or {})
        super().__init__(message)


_T = TypeVar("_T")


def serving(request: web.Request, key: web.AppKey[_T]) -> _T:
    """``request.app[key]``, or a 503 where the app runs without the hotline
    server (an admin app on its own)."""
    value = request.app.get(key)
    if value is None:
        raise ApiError(503, "not_serving", "the hotline server is not running here")
    return value


async def json_body(request: web.Request) -> Any:
    """The request's body parsed as JSON; a 400 ``bad_json`` otherwise."""
    try:
        return await request.json()
    except ValueError:
        raise ApiError(400, "bad_json", "the body is not JSON") from None


async def json_object(request: web.Request) -> dict:
    """The request's body as a JSON object; a 400 ``bad_json`` otherwise."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return body


def error_body(
    status: int, error: str, message: str, details: Mapping[str, object] | None = None
) -> dict:
    return {
        "status": status,
        "message": message,
        "error": error,
        "details": dict(details or {}),
    }


def _response(exc: ApiError) -> web.Response:
    body = error_body(exc.status, exc.error, str(exc), exc.details)
    return web.json_response(body, status=exc.status, headers=exc.headers)


def translate(exc: Exception) -> ApiError | None:
    """Our domain errors as API errors; None for anything unexpected."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, DialplanError):
        return ApiError(
            422,
            "invalid-dialplan",
            f"the dial plan has {len(exc.problems)} problem(s); nothing was changed",
            {"problems": exc.problems},
        )
    if isinstance(exc, PromptRejected):
        return ApiError(exc.status, exc.error, str(exc), exc.details)
    if isinstance(exc, UnknownVersion):
        return ApiError(404, "version-not-found", str(exc))
    if isinstance(exc, NothingToRollBack):
        return ApiError(409, "nothing-to-roll-back", str(exc))
    return None


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are not errors
        error = _BY_STATUS.get(exc.status, "http-error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return _response(ApiError(exc.status, error, exc.reason, headers=headers))
    except Exception as exc:
        known = translate(exc)
        if known is not None:
            return _response(known)
        log.web.exception("%s %s failed", request.method, request.path)
        return _response(ApiError(500, "internal-error", "the server failed"))
