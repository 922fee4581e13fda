"""Prompt routes: list, upload (any common audio format), play and delete.

An upload is ``multipart/form-data`` with a ``file`` part and, optionally,
``name`` (default: the file's name without its extension) and ``language``
(default zh). It is converted off the event loop, kept in the prompts folder
and installed where Asterisk plays it, so the next call hears it.
"""

from __future__ import annotations

import asyncio
from urllib.parse import unquote

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import BadHttpMessage

from ivr.prompt_convert import MAX_UPLOAD_BYTES, PromptRejected
from ivr.prompt_library import (
    check_filename,
    check_language,
    check_name,
    name_from_filename,
)
from ivr.web.auth import Role, requires
from ivr.web.errors import ApiError
from ivr.web.keys import CONVERSION_SLOTS, PLANS, PROMPTS
from routing.dialplan import required_recordings

_FIELD_LIMIT = 200  # bytes of a text field (name, language)


def _used_by_live_plan(request: web.Request) -> set[tuple[str, str]]:
    return required_recordings(request.app[PLANS].plan)


@requires(Role.AGENT)
async def list_prompts(request: web.Request) -> web.Response:
    found = await asyncio.to_thread(request.app[PROMPTS].list)
    used = _used_by_live_plan(request)
    recorded = {(p.language, p.name) for p in found}
    return web.json_response(
        {
            "prompts": [
                {**p.to_dict(), "used_by_live_plan": (p.language, p.name) in used}
                for p in found
            ],
            "placeholders": [
                f"{lang}/{name}" for lang, name in sorted(used - recorded)
            ],
        }
    )


@requires(Role.ADMIN)
async def upload_prompt(request: web.Request) -> web.Response:
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(
            415,
            "expected-multipart",
            "upload with multipart/form-data: a 'file' part, optionally 'name' "
            "and 'language'",
        )
    if request.content_length is not None and request.content_length > (
        MAX_UPLOAD_BYTES + 64 * 1024
    ):
        raise _too_large()
    fields: dict[str, str] = {}
    data: bytes | None = None
    filename = ""
    reader = await request.multipart()
    while True:
        try:
            part = await reader.next()
        except (BadHttpMessage, ValueError) as exc:
            # aiohttp refuses control characters in part headers, for one.
            raise ApiError(
                400, "bad-multipart", f"the multipart body is malformed: {exc}"
            ) from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "bad-request", "nested multipart bodies are not taken")
        if part.name == "file":
            # Decoded first: "..%2F" must not slip past the check.
            filename = check_filename(unquote(part.filename or ""))
            data = await _read_limited(part, MAX_UPLOAD_BYTES, _too_large)
        elif part.name in ("name", "language"):
            raw = await _read_limited(part, _FIELD_LIMIT, _field_too_long)
            fields[part.name] = raw.decode("utf-8", "replace").strip()
        else:
            await part.release()
    if data is None:
        raise ApiError(400, "missing-file", "the upload has no 'file' part")
    language = check_language(fields.get("language") or "zh")
    name = check_name(fields["name"]) if fields.get("name") else None
    if name is None:
        name = name_from_filename(filename) if filename else check_name("")

    library = request.app[PROMPTS]
    async with request.app[CONVERSION_SLOTS]:
        added = await asyncio.to_thread(library.add, data, language, name)
    used = (language, name) in _used_by_live_plan(request)
    return web.json_response(
        {
            "prompt": added.prompt.to_dict(),
            "conversion": added.converted.report(),
            "replaced": added.replaced,
            "installed": added.installed,
            "used_by_live_plan": used,
        },
        status=200 if added.replaced else 201,
    )


async def _read_limited(part: BodyPartReader, limit: int, too_much) -> bytes:
    buffer = bytearray()
    while chunk := await part.read_chunk(64 * 1024):
        buffer += chunk
        if len(buffer) > limit:
            raise too_much()
    return bytes(buffer)


def _too_large() -> PromptRejected:
    return PromptRejected(
        413,
        "upload-too-large",
        f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB",
        limit_bytes=MAX_UPLOAD_BYTES,
    )


def _field_too_long() -> ApiError:
    return ApiError(400, "bad-request", "the name and language fields are short text")


@requires(Role.AGENT)
async def play_prompt(request: web.Request) -> web.StreamResponse:
    library = request.app[PROMPTS]
    language, name = request.match_info["language"], request.match_info["name"]
    await asyncio.to_thread(library.get, language, name)  # 404 when absent
    return web.FileResponse(
        library.path(language, name), headers={"Content-Type": "audio/wav"}
    )


@requires(Role.ADMIN)
async def delete_prompt(request: web.Request) -> web.Response:
    library = request.app[PROMPTS]
    language = check_language(request.match_info["language"])
    name = check_name(request.match_info["name"])
    if (language, name) in _used_by_live_plan(request):
        raise ApiError(
            409,
            "prompt-in-use",
            f"the live dial plan plays {language}/{name}: publish a plan without "
            "it first (or upload a new recording to replace it)",
            {"language": language, "name": name},
        )
    if not await asyncio.to_thread(library.delete, language, name):
        raise ApiError(
            404,
            "prompt-not-found",
            f"no recording {language}/{name}",
            {"language": language, "name": name},
        )
    return web.Response(status=204)
