"""The PJSUA2 softphone farm, phone to phone over loopback (no Asterisk needed).

Registration is checked against a small digest registrar in this file; one
test also talks to a real Asterisk on 127.0.0.1:25060 when one is running.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import signal
import time
from pathlib import Path

import pytest

from ivr.softphone import (
    CallDisconnected,
    RegistrationFailed,
    SoftphoneFarm,
    SoftphoneTimeout,
    WorkerDied,
    loudness,
)
from ivr.softphone.farm import DEFAULT_PHONES_PER_WORKER

pytestmark = pytest.mark.e2e


@pytest.fixture
async def farm(tmp_path):
    async with SoftphoneFarm(record_dir=tmp_path) as farm:
        yield farm


async def connected_pair(farm, *, answer_delay=0.0, headers=None):
    alice = await farm.add_account("alice", user="alice", register=False)
    bob = await farm.add_account(
        "bob", user="bob", register=False, auto_answer=True, answer_delay=answer_delay
    )
    out = await alice.call(bob.contact_uri, headers=headers)
    await out.wait_state("CONFIRMED")
    inc = await bob.wait_incoming()
    await inc.wait_state("CONFIRMED")
    await out.wait_media()
    await inc.wait_media()
    return out, inc


def _live_workers() -> set[int]:
    """Live (not zombie) worker processes whose parent is this process."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rpartition(")")[2].split()
        state, ppid = fields[0], int(fields[1])
        if b"ivr.softphone.worker" in cmdline and ppid == os.getpid() and state != "Z":
            found.add(int(entry.name))
    return found


_BEFORE: set[int] = set()


@pytest.fixture(autouse=True)
def _workers_already_running():
    """The session's lab runs a farm of its own: its workers are not ours."""
    _BEFORE.clear()
    _BEFORE.update(_live_workers())


def worker_processes_of_this_test() -> list[int]:
    return sorted(_live_workers() - _BEFORE)


def pid_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


async def test_auto_answer_after_delay(farm):
    alice = await farm.add_account("alice", user="alice", register=False)
    bob = await farm.add_account(
        "bob", user="bob", register=False, auto_answer=True, answer_delay=0.6
    )
    assert bob.contact_uri == f"sip:bob@127.0.0.1:{bob.local_port}"
    started = time.monotonic()
    out = await alice.call(bob.contact_uri, headers={"X-Ticket": "T-42"})
    assert out.direction == "out"
    await out.wait_state("EARLY")
    assert out.last_code == 180
    await out.wait_state("CONFIRMED")
    assert time.monotonic() - started >= 0.5

    inc = await bob.wait_incoming()
    assert inc.direction == "in"
    assert bob.incoming == [inc]
    assert inc.headers["X-Ticket"] == "T-42"
    assert "sip:alice@127.0.0.1" in inc.remote_uri
    assert inc.sip_call_id == out.sip_call_id != ""
    await inc.wait_state("CONFIRMED")
    await out.wait_media()
    await inc.wait_media()
    assert out.media_active and inc.media_active
    assert out.states_seen[0] == "CALLING"
    assert out.states_seen[-1] == "CONFIRMED"


async def test_dtmf_arrives_once_each_in_order(farm):
    out, inc = await connected_pair(farm)
    await out.send_dtmf("1234#")
    assert await inc.wait_dtmf(5) == "1234#"
    # Repeated digits are separate presses; the other direction works too.
    await inc.send_dtmf("11*", gap=0.3)
    assert await out.wait_dtmf(3) == "11*"
    await asyncio.sleep(0.5)  # late duplicates would have arrived by now
    assert inc.dtmf_received == list("1234#")
    assert out.dtmf_received == list("11*")


async def test_dtmf_then_hold_neither_loses_nor_doubles(farm):
    # Hold restarts the RTP stream: digits still queued would be dropped, and
    # trailing packets of a digit could pass for a new press.
    out, inc = await connected_pair(farm)
    await out.send_dtmf("5#")
    await out.hold()
    await asyncio.sleep(0.5)
    assert inc.dtmf_received == list("5#")


async def test_hold_and_unhold(farm):
    out, inc = await connected_pair(farm)
    await out.hold()
    assert out.media_status == "LOCAL_HOLD"
    await inc.wait_media("REMOTE_HOLD")
    assert not inc.media_active
    await out.unhold()
    await inc.wait_media("ACTIVE")
    assert out.media_active and inc.media_active
    assert out.state == inc.state == "CONFIRMED"


@pytest.mark.parametrize("side", ["caller", "callee"])
async def test_hangup_from_either_side(farm, side):
    out, inc = await connected_pair(farm)
    hanging, other = (out, inc) if side == "caller" else (inc, out)
    await hanging.hangup()
    await other.wait_disconnected()
    await hanging.wait_disconnected()
    assert not out.media_active and not inc.media_active
    await hanging.hangup()  # hanging up twice is harmless


async def test_reject_raises_clear_error_with_code(farm):
    alice = await farm.add_account("alice", user="alice", register=False)
    bob = await farm.add_account("bob", user="bob", register=False)
    out = await alice.call(bob.contact_uri)
    inc = await bob.wait_incoming()
    await out.wait_state("EARLY")  # bob rings without auto-answer
    await inc.hangup(486)
    with pytest.raises(CallDisconnected, match="486") as caught:
        await out.wait_state("CONFIRMED")
    assert caught.value.code == 486
    assert out.last_code == 486
    assert "EARLY" in str(caught.value)


async def test_timeout_names_call_and_states_seen(farm):
    alice = await farm.add_account("alice", user="alice", register=False)
    bob = await farm.add_account("bob", user="bob", register=False)
    out = await alice.call(bob.contact_uri)
    await out.wait_state("EARLY")
    with pytest.raises(SoftphoneTimeout) as caught:
        await out.wait_state("CONFIRMED", timeout=0.5)
    assert out.id in str(caught.value)
    assert "CALLING, EARLY" in str(caught.value)
    inc = await bob.wait_incoming()
    await inc.answer()
    await out.wait_state("CONFIRMED")
    with pytest.raises(SoftphoneTimeout, match="incoming call on phone alice"):
        await alice.wait_incoming(timeout=0.2)


async def test_recording_tells_tone_from_silence(farm):
    out, inc = await connected_pair(farm)
    await inc.play_tone(800)
    await asyncio.sleep(1.5)
    heard_by_caller = loudness(await out.recording())
    await inc.stop_playing()
    await out.hangup()
    await inc.wait_disconnected()
    heard_by_callee = loudness(await inc.recording())  # finalised at hang-up
    assert heard_by_caller.sounding_seconds > 0.8
    assert heard_by_callee.silent
    assert heard_by_callee.seconds > 1.0


async def test_registration_with_digest(registrar, farm):
    phone = await farm.add_account(
        "citizen",
        user="pstn",
        password="s3cret",
        port=registrar.port,
        auth_user="pstn",
        caller_id="13800000001",
        display_name="市民",
    )
    assert phone.registered
    first, authed = registrar.requests[:2]
    assert "Authorization" not in first
    assert 'username="pstn"' in authed["Authorization"]
    assert "<sip:13800000001@127.0.0.1>" in authed["From"]
    assert f":{phone.local_port}" in authed["Contact"]

    await phone.unregister()
    assert not phone.registered
    assert registrar.bindings == {}
    await phone.register()
    assert phone.registered
    assert "13800000001" in registrar.bindings
    await farm.close()  # un-registers on the way out
    assert registrar.bindings == {}


async def test_registration_failure_carries_code(registrar, farm):
    with pytest.raises(RegistrationFailed) as caught:
        await farm.add_account(
            "agent", user="6001", password="wrong", port=registrar.port
        )
    assert caught.value.code == 403
    assert "agent" not in farm.phones
    # The failed phone's slot is free again and the worker still serves.
    phone = await farm.add_account(
        "agent", user="6001", password="pw6001", port=registrar.port
    )
    assert phone.registered


async def test_the_real_asterisk_refuses_an_unknown_phone_and_a_wrong_password(
    farm, lab
):
    with pytest.raises(RegistrationFailed) as stranger:
        await farm.add_account(
            "nobody", user="no-such-agent", password="x", port=lab.ports.sip
        )
    assert stranger.value.code in (401, 403, 404)
    with pytest.raises(RegistrationFailed) as wrong:
        await farm.add_account(
            "intruder", user="6001", password="not-it", port=lab.ports.sip
        )
    assert wrong.value.code in (401, 403)


async def test_worker_crash_fails_waiters_at_once(farm):
    alice = await farm.add_account("alice", user="alice", register=False)
    bob = await farm.add_account("bob", user="bob", register=False)
    out = await alice.call(bob.contact_uri)
    await out.wait_state("EARLY")
    waiters = [
        asyncio.create_task(out.wait_state("CONFIRMED", timeout=60)),
        asyncio.create_task(bob.wait_incoming(timeout=60)),  # already had one
        asyncio.create_task(bob.wait_incoming(timeout=60)),
    ]
    await asyncio.sleep(0.1)
    os.kill(alice.worker_pid, signal.SIGKILL)
    started = time.monotonic()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert time.monotonic() - started < 5
    assert results[1] is not None and not isinstance(results[1], Exception)
    for failed in (results[0], results[2]):
        assert isinstance(failed, WorkerDied)
        assert "SIGKILL" in str(failed)
        assert "stderr tail" in str(failed) and "phone bob" in str(failed)
    with pytest.raises(WorkerDied):
        await out.hangup()
    with pytest.raises(WorkerDied):
        await out.wait_disconnected()
    await farm.close()


async def test_close_leaves_no_process(tmp_path):
    farm = await SoftphoneFarm.start(phones_per_worker=1, record_dir=tmp_path)
    phones = [
        await farm.add_account(f"p{i}", user=f"u{i}", register=False, auto_answer=True)
        for i in range(3)
    ]
    pids = farm.worker_pids
    assert len(set(pids)) == 3
    assert sorted(worker_processes_of_this_test()) == sorted(pids)
    out = await phones[0].call(phones[2].contact_uri)  # across two workers
    await out.wait_state("CONFIRMED")
    inc = await phones[2].wait_incoming()

    await farm.close()
    assert out.state == "DISCONNECTED" and inc.state == "DISCONNECTED"
    assert not any(pid_exists(pid) for pid in pids)
    assert worker_processes_of_this_test() == []
    await farm.close()  # idempotent


async def test_more_phones_than_one_worker_holds(tmp_path):
    async with SoftphoneFarm(record_dir=tmp_path) as farm:
        phones = [
            await farm.add_account(
                f"p{i}", user=f"u{i}", register=False, auto_answer=True
            )
            for i in range(2 * DEFAULT_PHONES_PER_WORKER + 1)
        ]
        assert len(farm.worker_pids) == 3
        assert phones[0].worker_pid != phones[-1].worker_pid
        out = await phones[-1].call(phones[0].contact_uri)
        await out.wait_state("CONFIRMED")
        await out.hangup()
        await out.wait_disconnected()
    assert worker_processes_of_this_test() == []


async def test_close_kills_a_worker_that_does_not_exit(tmp_path):
    farm = await SoftphoneFarm.start(record_dir=tmp_path)
    await farm.add_account("p", user="p", register=False)
    pid = farm.worker_pids[0]
    os.kill(pid, signal.SIGSTOP)  # frozen: it can neither reply nor exit
    started = time.monotonic()
    await farm.close(timeout=0.5)
    assert time.monotonic() - started < 5
    assert not pid_exists(pid)


# -- a small registrar with digest authentication ------------------------------


class DigestRegistrar(asyncio.DatagramProtocol):
    REALM = "yihaotong-test"

    def __init__(self, users: dict[str, str]):
        self.users = users
        self.nonce = secrets.token_hex(8)
        self.requests: list[dict[str, str]] = []
        self.bindings: dict[str, str] = {}
        self.port = 0

    def connection_made(self, transport):
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def datagram_received(self, data, addr):
        head = data.decode(errors="replace").split("\r\n\r\n", 1)[0]
        start, *lines = head.split("\r\n")
        if not start.startswith("REGISTER "):
            return
        headers: dict[str, str] = {}
        vias = []
        for line in lines:
            name, _, value = line.partition(":")
            name, value = name.strip(), value.strip()
            if name.lower() in ("via", "v"):
                vias.append(value)
            headers.setdefault(name, value)
        self.requests.append(headers)
        reply = [f"Via: {via}" for via in vias] + [
            f"From: {headers['From']}",
            f"To: {headers['To']};tag={secrets.token_hex(4)}",
            f"Call-ID: {headers['Call-ID']}",
            f"CSeq: {headers['CSeq']}",
        ]
        auth = headers.get("Authorization")
        if auth is None:
            status = "401 Unauthorized"
            reply.append(
                f'WWW-Authenticate: Digest realm="{self.REALM}", '
                f'nonce="{self.nonce}", algorithm=MD5'
            )
        elif self.authorised(auth):
            status = "200 OK"
            aor = re.search(r"sip:([^@;>]+)@", headers["To"]).group(1)
            expires = int(headers.get("Expires", "300"))
            contact = headers.get("Contact", "")
            if "expires=0" in contact or expires == 0:
                self.bindings.pop(aor, None)
            else:
                self.bindings[aor] = contact
                reply.append(f"Contact: {contact.split(';')[0]};expires={expires}")
            reply.append(f"Expires: {expires}")
        else:
            status = "403 Forbidden"
        text = f"SIP/2.0 {status}\r\n" + "\r\n".join(reply)
        self.transport.sendto((text + "\r\nContent-Length: 0\r\n\r\n").encode(), addr)

    def authorised(self, header: str) -> bool:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', header))
        password = self.users.get(params.get("username", ""))
        if password is None:
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{params['username']}:{self.REALM}:{password}")
        ha2 = md5(f"REGISTER:{params['uri']}")
        if "qop" in params:
            expected = md5(
                f"{ha1}:{params['nonce']}:{params['nc']}:"
                f"{params['cnonce']}:{params['qop']}:{ha2}"
            )
        else:
            expected = md5(f"{ha1}:{params['nonce']}:{ha2}")
        return params.get("response") == expected


@pytest.fixture
async def registrar():
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: DigestRegistrar({"pstn": "s3cret", "6001": "pw6001"}),
        local_addr=("127.0.0.1", 0),
    )
    yield protocol
    transport.close()
