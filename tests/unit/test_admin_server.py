"""HotlineServer's issue-3 start-up: versions, file watcher and the admin API."""

from __future__ import annotations

import secrets
import shutil
from pathlib import Path

import aiohttp
import pytest

from ivr.config import from_dict
from ivr.errors import ConfigError
from ivr.server import HotlineServer
from ivr.web.settings import load_admin_settings

DEFAULT_PLAN = Path(__file__).parents[2] / "dialplans" / "12345.yaml"


def make_config(tmp_path: Path, admin: str | None):
    (tmp_path / "config").mkdir()
    (tmp_path / "dialplans").mkdir()
    shutil.copy(DEFAULT_PLAN, tmp_path / "dialplans" / "12345.yaml")
    (tmp_path / "ami.secret").write_text("s3cret")
    if admin is not None:
        (tmp_path / "config" / "admin.toml").write_text(admin)
    raw = {
        "ami": {"secret_file": "ami.secret"},
        "store": {"path": "var/tickets.db"},
        "asterisk": {"sounds_dir": str(tmp_path / "sounds")},
    }
    return from_dict(raw, source=tmp_path / "config" / "hotline.toml", base=tmp_path)


def test_admin_settings_defaults_and_refusals(tmp_path, monkeypatch):
    monkeypatch.delenv("YHT_AMI_SECRET", raising=False)
    monkeypatch.delenv("YHT_ADMIN_CONFIG", raising=False)
    config = make_config(tmp_path, None)
    settings = load_admin_settings(config)
    assert not settings.enabled
    assert settings.versions_dir == tmp_path / "var" / "dialplans"
    assert settings.prompts_dir == tmp_path / "recordings" / "prompts"
    assert settings.install_dir == tmp_path / "sounds"
    (tmp_path / "config" / "admin.toml").write_text("port = 8345\n")
    with pytest.raises(ConfigError, match="tokens_file is required"):
        load_admin_settings(config)
    (tmp_path / "config" / "admin.toml").write_text('tokens_file = "t"\ncolour = 1\n')
    with pytest.raises(ConfigError, match="unknown keys"):
        load_admin_settings(config)


async def test_server_serves_versions_and_the_admin_api(tmp_path, monkeypatch):
    monkeypatch.delenv("YHT_AMI_SECRET", raising=False)
    monkeypatch.delenv("YHT_ADMIN_CONFIG", raising=False)
    token = secrets.token_urlsafe(32)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"admin wang {token}\n")
    tokens.chmod(0o600)
    config = make_config(
        tmp_path, f'host = "127.0.0.1"\nport = 0\ntokens_file = "{tokens}"\n'
    )
    server = HotlineServer(config)
    await server._start_admin()
    try:
        assert server.plans.version.number == 1
        url = f"http://127.0.0.1:{server.admin_api.port}"
        text = DEFAULT_PLAN.read_text(encoding="utf-8").replace(
            "1: {queue: business}", "1: {queue: psych}"
        )
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{url}/dialplans", data=text, headers=auth) as r:
                assert r.status == 201
                assert (await r.json())["version"]["author"] == "wang"
        assert server.plan.menus["main"].keys["1"].queue == "psych"
        version = await server.rollback("wang")
        assert version.restores == 1
        assert server.plan.menus["main"].keys["1"].queue == "business"
    finally:
        await server._stop_admin()
    assert server.admin_api is None and not server._admin_tasks


async def test_the_running_server_serves_tickets_beside_dial_plans(
    tmp_path, monkeypatch
):
    """With a work-order catalog beside the configuration, the same API serves
    the tickets routes, with their own OpenAPI entries."""
    from ivr.tickets import TicketStore

    monkeypatch.delenv("YHT_AMI_SECRET", raising=False)
    monkeypatch.delenv("YHT_ADMIN_CONFIG", raising=False)
    monkeypatch.delenv("YHT_WORKORDER", raising=False)
    token = secrets.token_urlsafe(32)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"supervisor li {token}\n")
    tokens.chmod(0o600)
    config = make_config(
        tmp_path, f'host = "127.0.0.1"\nport = 0\ntokens_file = "{tokens}"\n'
    )
    shutil.copy(
        DEFAULT_PLAN.parents[1] / "config" / "workorder.yaml",
        tmp_path / "config" / "workorder.yaml",
    )
    server = HotlineServer(config)
    server.store = await TicketStore.open(tmp_path / "tickets.db")
    ticket = await server.store.open_ticket(
        linkedid="1.1", channel="PJSIP/pstn-1", caller_number="13800000001"
    )
    await server._start_admin()
    try:
        url = f"http://127.0.0.1:{server.admin_api.port}"
        auth = {"Authorization": f"Bearer {token}"}
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{url}/tickets/{ticket['number']}", headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["number"] == ticket["number"]
            async with http.get(f"{url}/tickets/{ticket['number']}") as r:
                assert r.status == 401
            async with http.get(f"{url}/openapi.json") as r:
                paths = (await r.json())["paths"]
                assert "/tickets/{number}" in paths and "/dialplans" in paths
    finally:
        await server._stop_admin()
        await server.store.close()
