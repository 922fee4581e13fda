"""The OpenAPI 3.1 document of the admin API, built from its route table."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ivr.web.auth import Role

# Where a route carries a body, and of what kind.
_BODIES = {
    "yaml": {
        "description": "The dial plan's YAML text (UTF-8, at most 1 MB).",
        "content": {"application/yaml": {"schema": {"type": "string"}}},
    },
    "json": {
        "description": "Options as a JSON object.",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "multipart": {
        "description": "A recording (WAV, MP3, OGG, M4A or FLAC, at most 20 MB and "
        "5 minutes), its prompt name (default: the file name) and language "
        "(default zh).",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "name": {
                            "type": "string",
                            "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$",
                        },
                        "language": {"type": "string", "pattern": "^[a-z]{2,3}$"},
                    },
                }
            }
        },
    },
}

ERROR_SCHEMA = {
    "type": "object",
    "required": ["status", "message", "error", "details"],
    "properties": {
        "status": {"type": "integer", "description": "The HTTP status again."},
        "message": {"type": "string", "description": "For people; may change."},
        "error": {
            "type": "string",
            "description": "A stable id to branch on, e.g. invalid-dialplan.",
        },
        "details": {
            "type": "object",
            "description": "More about the error, e.g. the dial plan's problems "
            "as FILE:LINE:COL lines.",
        },
    },
}

_ERRORS = {
    "400": "The request is malformed.",
    "401": "No valid bearer token.",
    "403": "The token's role is too low.",
    "404": "No such version or prompt.",
    "409": "Conflicts with the live plan (rollback, delete).",
    "413": "Too large.",
    "415": "Not a format this route takes.",
    "422": "Understood but refused (an invalid dial plan, an unusable recording).",
}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # aiohttp's pattern: {name} or {name:regex}
    handler: Callable
    summary: str
    body: str | None = None  # a key of _BODIES

    @property
    def role(self) -> Role | None:
        return getattr(self.handler, "required_role", Role.AGENT)


_VARIABLE = re.compile(r"\{([a-z_]+)(?::[^}]*)?\}")


def _openapi_path(path: str) -> tuple[str, list[str]]:
    """``/prompts/{language:[a-z]+}/x`` -> ``/prompts/{language}/x``, [language]."""
    names = _VARIABLE.findall(path)
    return _VARIABLE.sub(lambda m: "{" + m.group(1) + "}", path), names


def openapi_document(operations: Iterable[Operation]) -> dict:
    paths: dict[str, dict] = {
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}},
            }
        }
    }
    for op in operations:
        path, names = _openapi_path(op.path)
        role = op.role.name.lower() if op.role else "none"
        entry: dict = {
            "summary": op.summary,
            "description": (op.handler.__doc__ or "").strip() or op.summary,
            "operationId": op.handler.__name__,
            "x-required-role": role,
            "responses": {
                "2XX": {"description": "Success."},
                **{
                    status: {
                        "description": text,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Error"}
                            }
                        },
                    }
                    for status, text in _ERRORS.items()
                },
            },
        }
        if names:
            entry["parameters"] = [
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string"},
                }
                for name in names
            ]
        if op.body:
            entry["requestBody"] = {"required": op.body != "json", **_BODIES[op.body]}
        paths.setdefault(path, {})[op.method.lower()] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "yihaotong admin API",
            "version": "1",
            "description": "Dial plans (versions, validation, publish, rollback) "
            "and prompts of the 12345 hotline. Roles: agent < supervisor < admin; "
            "each operation names the lowest in x-required-role.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": ERROR_SCHEMA},
        },
        "paths": paths,
    }
