"""The admin API through aiohttp's test client: auth, every route, one error shape."""

from __future__ import annotations

import pytest

from ivr.errors import ConfigError
from ivr.web.app import OPERATIONS
from ivr.web.auth import Role, TokenBook, parse_tokens
from tests.support.admin import PLAN, admin_api

PSYCH = PLAN.replace("1: {queue: business}", "1: {queue: psych}")
BROKEN = PLAN.replace("1: {queue: business}", "1: {queue: nowhere}")
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
async def admin(tmp_path):
    async for api in admin_api(tmp_path):
        yield api


def assert_error(body: dict, status: int, error: str) -> None:
    assert set(body) == {"status", "message", "error", "details"}
    assert (body["status"], body["error"]) == (status, error)
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)


# --- authentication ---------------------------------------------------------------


async def test_no_token_or_a_wrong_one_is_401(admin):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
        response = await admin.client.get("/dialplans", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert_error(await response.json(), 401, "unauthorized")


@pytest.mark.parametrize(
    ("method", "path", "lowest"),
    [
        ("GET", "/dialplans", Role.AGENT),
        ("POST", "/dialplans/validate", Role.SUPERVISOR),
        ("POST", "/dialplans/diff", Role.SUPERVISOR),
        ("POST", "/dialplans/simulate", Role.SUPERVISOR),
        ("POST", "/dialplans", Role.ADMIN),
        ("POST", "/dialplans/rollback", Role.ADMIN),
        ("POST", "/prompts", Role.ADMIN),
        ("DELETE", "/prompts/zh/welcome", Role.ADMIN),
    ],
)
async def test_roles_below_the_route_get_403(admin, method, path, lowest):
    for role in Role:
        if role >= lowest:
            continue
        response = await admin.client.request(method, path, headers=admin.auth(role))
        assert response.status == 403, (role, path)
        body = await response.json()
        assert_error(body, 403, "forbidden")
        assert body["details"] == {
            "needed": lowest.name.lower(),
            "role": role.name.lower(),
        }


def test_every_route_names_its_role():
    assert all(op.role is not None for op in OPERATIONS)


def test_tokens_file_format_and_permissions(tmp_path):
    good = "x" * 32
    assert parse_tokens(f"# comment\nadmin wang {good}\n") == [
        (Role.ADMIN, "wang", good)
    ]
    for bad in (f"boss wang {good}", "admin wang short", f"admin {good}"):
        with pytest.raises(ConfigError):
            parse_tokens(bad)
    with pytest.raises(ConfigError, match="repeated"):
        parse_tokens(f"admin a {good}\nagent a {'y' * 32}")
    path = tmp_path / "tokens"
    path.write_text(f"agent li {good}\n")
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        TokenBook.load(path)
    path.chmod(0o600)
    assert TokenBook.load(path).identify(good).name == "li"


# --- dial plans -------------------------------------------------------------------


async def test_list_and_read_versions(admin):
    response = await admin.client.get("/dialplans", headers=admin.auth(Role.AGENT))
    body = await response.json()
    assert body["live"] == 1
    assert [v["number"] for v in body["versions"]] == [1]
    assert body["versions"][0]["source"] == "file"

    response = await admin.client.get("/dialplans/live", headers=admin.auth(Role.AGENT))
    body = await response.json()
    assert body["live"] is True and body["text"] == PLAN
    assert body["version"]["number"] == 1

    response = await admin.client.get(
        "/dialplans/1.yaml", headers=admin.auth(Role.AGENT)
    )
    assert response.content_type == "application/yaml"
    assert await response.text() == PLAN

    response = await admin.client.get("/dialplans/7", headers=admin.auth(Role.AGENT))
    assert_error(await response.json(), 404, "version-not-found")


async def test_validate(admin):
    client, auth = admin.client, admin.auth(Role.SUPERVISOR)
    response = await client.post("/dialplans/validate", data=PLAN, headers=auth)
    body = await response.json()
    assert response.status == 200 and body["valid"] is True
    assert body["placeholders"] == ["zh/menu", "zh/welcome"]

    response = await client.post("/dialplans/validate", data=BROKEN, headers=auth)
    body = await response.json()
    assert_error(body, 422, "invalid-dialplan")
    assert body["details"]["problems"] == [
        "dialplan.yaml:16:18: undefined desk 'nowhere' (defined: business, general, "
        "psych)"
    ]


async def test_body_problems(admin):
    client, auth = admin.client, admin.auth(Role.SUPERVISOR)
    response = await client.post("/dialplans/validate", data=b"", headers=auth)
    assert_error(await response.json(), 400, "empty-body")
    response = await client.post("/dialplans/validate", data=b"\xff\xfe", headers=auth)
    assert_error(await response.json(), 400, "not-utf8")
    response = await client.post(
        "/dialplans/validate", data=b"#" * 1_000_001, headers=auth
    )
    assert_error(await response.json(), 413, "payload-too-large")


async def test_diff_against_live(admin):
    response = await admin.client.post(
        "/dialplans/diff", data=PSYCH, headers=admin.auth(Role.SUPERVISOR)
    )
    body = await response.json()
    assert body["live"] == 1 and body["changed"] and body["valid"]
    assert "-      1: {queue: business}\n+      1: {queue: psych}\n" in body["diff"]
    response = await admin.client.post(
        "/dialplans/diff", data=BROKEN, headers=admin.auth(Role.SUPERVISOR)
    )
    body = await response.json()
    assert body["valid"] is False and len(body["problems"]) == 1


async def test_publish_then_rollback(admin):
    client, auth = admin.client, admin.auth(Role.ADMIN)
    response = await client.post("/dialplans", data=PSYCH, headers={**auth, **YAML})
    body = await response.json()
    assert response.status == 201 and body["created"] is True
    assert body["version"]["number"] == 2
    assert body["version"]["author"] == "admin-user"  # the token's name
    assert admin.live.plan.menus["main"].keys["1"].queue == "psych"

    response = await client.post("/dialplans", data=PSYCH, headers=auth)
    assert response.status == 200 and (await response.json())["created"] is False

    response = await client.post("/dialplans", data=BROKEN, headers=auth)
    assert_error(await response.json(), 422, "invalid-dialplan")
    assert admin.live.version.number == 2  # the live plan keeps serving

    response = await client.post("/dialplans/rollback", headers=auth)
    body = await response.json()
    assert response.status == 200 and body["restores"] == 1
    assert body["version"]["number"] == 3
    assert admin.live.plan.menus["main"].keys["1"].queue == "business"

    response = await client.post("/dialplans/rollback", json={"to": 2}, headers=auth)
    assert (await response.json())["restores"] == 2
    response = await client.post("/dialplans/rollback", json={"to": 2}, headers=auth)
    assert_error(await response.json(), 409, "nothing-to-roll-back")
    response = await client.post("/dialplans/rollback", json={"to": "x"}, headers=auth)
    assert_error(await response.json(), 400, "bad-request")
    response = await client.post("/dialplans/rollback", data="{", headers=auth)
    assert_error(await response.json(), 400, "invalid-json")


async def test_simulate(admin):
    auth = admin.auth(Role.SUPERVISOR)
    response = await admin.client.post(
        "/dialplans/simulate",
        json={"keys": "1", "at": "2025-10-09T10:00"},
        headers=auth,
    )
    body = await response.json()
    assert (
        body["lines"][-1]
        == "[main] -> desk business (queue business, priority 0): key 1"
    )
    assert body["at"] == "2025-10-09T10:00:00+08:00"

    response = await admin.client.post(
        "/dialplans/simulate",
        json={"caller": "010-6512-3456", "text": PSYCH},
        headers=auth,
    )
    body = await response.json()
    assert body["caller"] == {"is_enterprise": True, "recent_desk": None}
    assert body["lines"][-1].endswith("priority 2): registered enterprise")

    response = await admin.client.post(
        "/dialplans/simulate", json={"keys": 5}, headers=auth
    )
    assert_error(await response.json(), 400, "bad-request")
    response = await admin.client.post(
        "/dialplans/simulate", json={"recent_desk": "Not A Desk"}, headers=auth
    )
    assert_error(await response.json(), 400, "bad-request")


# --- prompts (uploads have their own tests) ---------------------------------------


async def test_prompts_list_play_and_delete(admin, tmp_path):
    for lang, name in (("zh", "welcome"), ("zh", "spare")):
        path = admin.prompts_dir / lang / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_tiny_wav())
        admin.library.install(lang, name)
    client = admin.client

    response = await client.get("/prompts", headers=admin.auth(Role.AGENT))
    body = await response.json()
    assert body["prompts"] == [
        {
            "language": "zh",
            "name": "spare",
            "bytes": 204,
            "duration_ms": 10,
            "used_by_live_plan": False,
        },
        {
            "language": "zh",
            "name": "welcome",
            "bytes": 204,
            "duration_ms": 10,
            "used_by_live_plan": True,
        },
    ]
    assert body["placeholders"] == ["zh/menu"]

    response = await client.get(
        "/prompts/zh/welcome.wav", headers=admin.auth(Role.AGENT)
    )
    assert response.status == 200 and response.content_type == "audio/wav"
    assert await response.read() == _tiny_wav()
    response = await client.get("/prompts/zh/nope.wav", headers=admin.auth(Role.AGENT))
    assert_error(await response.json(), 404, "prompt-not-found")

    response = await client.delete("/prompts/zh/welcome", headers=admin.auth())
    body = await response.json()
    assert_error(body, 409, "prompt-in-use")
    response = await client.delete("/prompts/zh/spare", headers=admin.auth())
    assert response.status == 204
    assert not (admin.prompts_dir / "zh" / "spare.wav").exists()
    assert not (admin.install_dir / "zh" / "spare.wav").exists()
    response = await client.delete("/prompts/zh/spare", headers=admin.auth())
    assert_error(await response.json(), 404, "prompt-not-found")
    response = await client.delete("/prompts/zh/Bad..Name", headers=admin.auth())
    assert response.status == 404  # the router's pattern never matches it
    response = await client.delete("/prompts/zh/a%2F..%2Fx", headers=admin.auth())
    assert response.status == 404


def _tiny_wav() -> bytes:
    """10 ms of 8 kHz mono 16-bit silence: a 44-byte header and 160 bytes."""
    import struct

    data = b"\0" * 160
    fmt = struct.pack("<HHIIHH", 1, 1, 8000, 16000, 2, 16)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"
    body += struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


# --- errors and the OpenAPI document ----------------------------------------------


async def test_unknown_routes_and_methods_use_the_error_shape(admin):
    response = await admin.client.get("/nowhere", headers=admin.auth())
    assert_error(await response.json(), 404, "not-found")
    response = await admin.client.put("/dialplans", headers=admin.auth())
    body = await response.json()
    assert_error(body, 405, "method-not-allowed")
    assert "POST" in response.headers["Allow"]


async def test_openapi_is_served_without_a_token(admin):
    response = await admin.client.get("/openapi.json")
    assert response.status == 200
    doc = await response.json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["schemas"]["Error"]["required"] == [
        "status",
        "message",
        "error",
        "details",
    ]
    paths = doc["paths"]
    assert set(paths) == {
        "/openapi.json",
        "/dialplans",
        "/dialplans/{version}",
        "/dialplans/{version}.yaml",
        "/dialplans/validate",
        "/dialplans/diff",
        "/dialplans/simulate",
        "/dialplans/rollback",
        "/prompts",
        "/prompts/{language}/{name}.wav",
        "/prompts/{language}/{name}",
    }
    assert paths["/dialplans"]["post"]["x-required-role"] == "admin"
    assert paths["/dialplans"]["get"]["x-required-role"] == "agent"
    upload = paths["/prompts"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
