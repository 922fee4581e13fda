"""Wrong bearer tokens are rate-limited per address; secrets never reach a log."""

from __future__ import annotations

import logging
import secrets

import pytest

from ivr.ami.session import AmiSettings
from ivr.errors import ConfigError
from ivr.web.auth import FailureLimiter, Role, parse_tokens
from tests.support.admin import admin_api


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_is_blocked_after_the_limit_and_only_for_the_block_time():
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, block=30, clock=clock)
    for _ in range(2):
        limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") is None
    limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") == 30
    assert limiter.retry_after("198.51.100.8") is None  # others go on
    clock.now += 29.2
    assert limiter.retry_after("198.51.100.7") == 1
    clock.now += 1
    assert limiter.retry_after("198.51.100.7") is None


def test_failures_older_than_the_window_are_forgotten():
    clock = Clock()
    limiter = FailureLimiter(limit=3, window=60, block=30, clock=clock)
    for _ in range(2):
        limiter.failed("198.51.100.7")
        clock.now += 61
    limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") is None


def test_a_success_clears_the_count():
    limiter = FailureLimiter(limit=2, clock=Clock())
    limiter.failed("198.51.100.7")
    limiter.succeeded("198.51.100.7")
    limiter.failed("198.51.100.7")
    assert limiter.retry_after("198.51.100.7") is None


def test_bad_limits_are_refused_by_name():
    with pytest.raises(ValueError, match="failure limit 0"):
        FailureLimiter(limit=0)


@pytest.fixture
async def admin(tmp_path):
    async for api in admin_api(tmp_path):
        yield api


async def test_the_api_answers_429_with_retry_after_once_guessing_goes_on(
    admin, caplog
):
    guess = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}
    for _ in range(FailureLimiter().limit):
        assert (await admin.client.get("/dialplans", headers=guess)).status == 401
    response = await admin.client.get("/dialplans", headers=admin.auth(Role.ADMIN))
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    body = await response.json()
    assert (body["error"], body["details"]["retry_after"] > 0) == (
        "too-many-attempts",
        True,
    )
    assert "127.0.0.1" in caplog.text and "refusing that address" in caplog.text


async def test_requests_without_a_token_do_not_count(admin):
    for _ in range(FailureLimiter().limit + 2):
        assert (await admin.client.get("/dialplans")).status == 401
    response = await admin.client.get("/dialplans", headers=admin.auth(Role.AGENT))
    assert response.status == 200


async def test_no_token_or_secret_appears_in_any_log(admin, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + secrets.token_urlsafe(24)
    for headers in ({"Authorization": f"Bearer {wrong}"}, admin.auth(Role.ADMIN)):
        await admin.client.get("/dialplans", headers=headers)
        await admin.client.post("/dialplans/validate", data="x: [", headers=headers)
    short = "s3cr3t-token"
    with pytest.raises(ConfigError) as refused:
        parse_tokens(f"admin ops {short}\n", "tokens")
    ami_secret = secrets.token_urlsafe(18)
    shown = [caplog.text, str(refused.value), repr(AmiSettings(secret=ami_secret))]
    for text in shown:
        for secret in (wrong, short, ami_secret, *admin.tokens.values()):
            assert secret not in text
