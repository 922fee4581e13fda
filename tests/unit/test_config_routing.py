"""The ``[routing]`` section of the server configuration (issue 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.config import RoutingSettings, from_dict
from ivr.errors import ConfigError


def load(routing: dict | None, monkeypatch) -> object:
    monkeypatch.setenv("YHT_AMI_SECRET", "s3cret-for-tests")
    raw = {} if routing is None else {"routing": routing}
    return from_dict(raw, base=Path("."))


def test_defaults_without_the_section(monkeypatch):
    assert load(None, monkeypatch).routing == RoutingSettings()


def test_wrapup_per_desk_and_the_callback_dial_string(monkeypatch):
    routing = load(
        {"wrapup_seconds": 8, "wrapup": {"psych": 30}, "callback_dial": "X/{number}"},
        monkeypatch,
    ).routing
    assert routing.wrapup_seconds == 8 and routing.wrapup == {"psych": 30}
    assert routing.callback_dial.format(number="138") == "X/138"


@pytest.mark.parametrize(
    ("routing", "message"),
    [
        ({"wrapup_seconds": -1}, r"wrapup_seconds = -1: use 0 to 3600"),
        ({"wrapup": {"psych": "long"}}, r"psych = 'long'"),
        ({"callback_dial": "PJSIP/pstn-out"}, r"must contain \{number\}"),
        ({"wrap_up": 5}, r"unexpected keyword argument 'wrap_up'"),
    ],
)
def test_mistakes_are_refused_by_name(monkeypatch, routing, message):
    with pytest.raises(ConfigError, match=message):
        load(routing, monkeypatch)
