"""Asterisk's side of the browser softphone: the ws transport and the
agents' WebRTC endpoints are rendered only with the HTTP server on."""

from __future__ import annotations

import secrets

import pytest

from ivr.errors import PbxError
from ivr.pbx import Pbx, PbxSettings


def settings(**changes) -> PbxSettings:
    return PbxSettings(
        ami_secret=secrets.token_urlsafe(18),
        pstn_password=secrets.token_urlsafe(18),
        agents={"6001": "agent-secret-6001", "6002": "agent-secret-6002"},
        **changes,
    )


def test_webrtc_endpoints_beside_the_sip_ones_when_http_is_on(tmp_path):
    text = Pbx(settings(http_port=52088), root=tmp_path)._webrtc()
    assert "[transport-ws]\ntype = transport\nprotocol = ws" in text
    for agent in ("6001", "6002"):
        section = text.split(f"[web-{agent}](endpoint-defaults)", 1)[1]
        section = section.split("\n\n", 1)[0]
        assert "webrtc = yes" in section and "dtls_auto_generate_cert = yes" in section
        assert f"username = web-{agent}" in text
        assert f"password = agent-secret-{agent}" in text


def test_no_webrtc_and_no_http_by_default(tmp_path):
    assert Pbx(settings(), root=tmp_path)._webrtc() == ""


def test_a_bad_http_port_is_named():
    with pytest.raises(PbxError, match="http_port=80"):
        settings(http_port=80).check()
