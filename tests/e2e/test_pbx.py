"""The Asterisk instance of ivr.pbx, checked against the real Asterisk 22.

AMI is spoken with plain asyncio streams here and SIP with a minimal UDP user
agent (digest auth, INVITE/ACK/BYE, REGISTER, RFC 4733 DTMF), so that these
tests only depend on Asterisk and ivr.pbx.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import socket
import struct
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ivr.errors import PbxError
from ivr.pbx import SERVER_UNUSED_EVENTS, Pbx, PbxSettings

pytestmark = pytest.mark.e2e

SETTINGS = PbxSettings(
    name="pbxtest",
    sip_port=25060,
    ami_port=25038,
    rtp_start=26000,
    rtp_end=26999,
    ami_secret="ami-" + secrets.token_hex(8),
    agents={f"60{i:02d}": f"agent-pw-{i}" for i in range(1, 9)},
    pstn_password="pstn-" + secrets.token_hex(6),
    trunks={"trunk-110": "trunk-" + secrets.token_hex(6)},
)
CALLER = "13800000001"


@pytest.fixture(scope="module")
def pbx() -> Iterator[Pbx]:
    instance = Pbx(SETTINGS)
    asyncio.run(instance.start())
    try:
        yield instance
    finally:
        asyncio.run(instance.stop())


# --- AMI over plain streams ---------------------------------------------------


class Ami:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.greeting = b""
        self.seen: set[str] = set()  # event names received

    @classmethod
    async def connect(cls, port: int = SETTINGS.ami_port) -> Ami:
        ami = cls(*await asyncio.open_connection("127.0.0.1", port))
        ami.greeting = await asyncio.wait_for(ami.reader.readline(), 5)
        return ami

    async def send(self, action: str, **headers: str) -> None:
        lines = [f"Action: {action}", *(f"{k}: {v}" for k, v in headers.items())]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await self.writer.drain()

    async def message(self, timeout: float = 5) -> dict[str, str]:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        fields: dict[str, str] = {}
        for line in raw.decode().split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                fields.setdefault(key, value)
        if "Event" in fields:
            self.seen.add(fields["Event"])
        return fields

    async def wait_for(self, timeout: float = 10, **match: str) -> dict[str, str]:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.message(timeout)
                if all(msg.get(k) == v for k, v in match.items()):
                    return msg

    async def action(self, action: str, **headers: str) -> dict[str, str]:
        action_id = secrets.token_hex(4)
        await self.send(action, ActionID=action_id, **headers)
        return await self.wait_for(ActionID=action_id)

    async def login(self, secret: str = SETTINGS.ami_secret) -> dict[str, str]:
        return await self.action("Login", Username=SETTINGS.ami_user, Secret=secret)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


@pytest.fixture
async def ami(pbx: Pbx) -> AsyncIterator[Ami]:
    session = await Ami.connect()
    assert (await session.login())["Response"] == "Success"
    yield session
    await session.close()


# --- a minimal SIP user agent ----------------------------------------------------


class _Inbox(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.queue.put_nowait(data.decode(errors="replace"))


def _header(msg: str, name: str) -> str:
    match = re.search(rf"^{name}:\s*(.*?)\r$", msg, re.M | re.I)
    return match.group(1) if match else ""


def _status(msg: str) -> int:
    return int(msg.split(" ", 2)[1])


class Phone:
    """One SIP dialog (or registration) from a UDP port of its own."""

    def __init__(self, from_user: str, auth_user: str, password: str) -> None:
        self.from_user, self.auth_user, self.password = from_user, auth_user, password
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.cseq = 0
        self.to_user = ""
        self.to_tag = ""
        self.remote_target = ""
        self.remote_rtp = 0

    async def open(self) -> Phone:
        loop = asyncio.get_running_loop()
        self.transport, self.inbox = await loop.create_datagram_endpoint(
            _Inbox,
            local_addr=("127.0.0.1", 0),
            remote_addr=("127.0.0.1", SETTINGS.sip_port),
        )
        self.port = self.transport.get_extra_info("sockname")[1]
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        return self

    def close(self) -> None:
        self.transport.close()
        self.rtp.close()

    def _send(
        self,
        method: str,
        uri: str,
        cseq: int,
        branch: str,
        extra: str = "",
        body: str = "",
        to_tag: str = "",
    ) -> None:
        to = f"<sip:{self.to_user}@127.0.0.1>" + (f";tag={to_tag}" if to_tag else "")
        msg = (
            f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:{self.from_user}@127.0.0.1>;tag={self.tag}\r\n"
            f"To: {to}\r\nCall-ID: {self.call_id}\r\nCSeq: {cseq} {method}\r\n"
            f"Contact: <sip:{self.from_user}@127.0.0.1:{self.port}>\r\n"
            f"{extra}Content-Length: {len(body.encode())}\r\n\r\n{body}"
        )
        self.transport.sendto(msg.encode())

    async def _final(self, timeout: float = 5) -> str:
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.inbox.queue.get()
                if not msg.startswith("SIP/2.0"):
                    self._ok(msg)  # a request from Asterisk (BYE, OPTIONS)
                elif _status(msg) >= 200:
                    return msg

    def _ok(self, request: str) -> None:
        keep = ("via", "from", "to", "call-id", "cseq")
        lines = [h for h in request.split("\r\n") if h.split(":")[0].lower() in keep]
        reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(lines)
        self.transport.sendto((reply + "\r\nContent-Length: 0\r\n\r\n").encode())

    def _authorization(self, challenge: str, method: str, uri: str) -> str:
        f = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
        md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
        ha1 = md5(f"{self.auth_user}:{f['realm']}:{self.password}")
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = md5(
            f"{ha1}:{f['nonce']}:{nc}:{cnonce}:auth:{md5(f'{method}:{uri}')}"
        )
        return (
            f'Authorization: Digest username="{self.auth_user}", realm="{f["realm"]}"'
            f', nonce="{f["nonce"]}", uri="{uri}", response="{response}", '
            f'algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}"\r\n'
        )

    async def _request(
        self, method: str, uri: str, extra: str = "", body: str = ""
    ) -> tuple[list[int], str]:
        """Send, answer one digest challenge; the codes seen and the final answer."""
        codes: list[int] = []
        auth = ""
        for _ in range(2):
            self.cseq += 1
            branch = "z9hG4bK" + secrets.token_hex(6)
            self._send(method, uri, self.cseq, branch, auth + extra, body)
            resp = await self._final()
            codes.append(_status(resp))
            if method == "INVITE" and _status(resp) >= 300:
                to_tag = re.search(r"tag=([^;>\s]+)", _header(resp, "To"))
                self._send(
                    "ACK",
                    uri,
                    self.cseq,
                    branch,
                    to_tag=to_tag.group(1) if to_tag else "",
                )
            if _status(resp) != 401 or auth:
                break
            auth = self._authorization(_header(resp, "WWW-Authenticate"), method, uri)
        return codes, resp

    async def call(self, number: str) -> list[int]:
        """INVITE ``number``; on 200 OK the call is up (ACKed)."""
        self.to_user = number
        self.call_id, self.tag, self.to_tag = (
            secrets.token_hex(8),
            secrets.token_hex(4),
            "",
        )
        uri = f"sip:{number}@127.0.0.1:{SETTINGS.sip_port}"
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {self.rtp.getsockname()[1]} RTP/AVP 0 8 101\r\n"
            "a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
            "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n"
        )
        codes, resp = await self._request(
            "INVITE", uri, "Content-Type: application/sdp\r\n", sdp
        )
        if codes[-1] == 200:
            self.to_tag = re.search(r"tag=([^;>\s]+)", _header(resp, "To")).group(1)
            self.remote_target = re.search(r"<([^>]+)>", _header(resp, "Contact"))[1]
            self.remote_rtp = int(re.search(r"m=audio (\d+)", resp)[1])
            self._send(
                "ACK",
                self.remote_target,
                self.cseq,
                "z9hG4bK" + secrets.token_hex(6),
                to_tag=self.to_tag,
            )
        return codes

    def dtmf(self, digit: str) -> None:
        """Send one RFC 4733 telephone-event to Asterisk's RTP port."""
        event = "0123456789*#".index(digit)
        ssrc, stamp = secrets.randbits(32), secrets.randbits(16) << 8
        for seq, (end, duration) in enumerate(
            [(0, 160), (0, 320), (0, 480), (1, 640), (1, 640), (1, 640)]
        ):
            header = struct.pack(
                "!BBHII", 0x80, (0x80 if seq == 0 else 0) | 101, seq + 1, stamp, ssrc
            )
            payload = struct.pack("!BBH", event, (end << 7) | 10, duration)
            self.rtp.sendto(header + payload, ("127.0.0.1", self.remote_rtp))

    async def bye(self) -> int:
        self.cseq += 1
        self._send(
            "BYE",
            self.remote_target,
            self.cseq,
            "z9hG4bK" + secrets.token_hex(6),
            to_tag=self.to_tag,
        )
        return _status(await self._final())

    async def register(self) -> list[int]:
        self.to_user = self.from_user
        uri = f"sip:127.0.0.1:{SETTINGS.sip_port}"
        codes, _ = await self._request("REGISTER", uri, "Expires: 300\r\n")
        return codes


@pytest.fixture
async def phones() -> AsyncIterator[list[Phone]]:
    opened: list[Phone] = []
    yield opened
    for phone in opened:
        phone.close()


async def phone(
    opened: list[Phone], from_user: str, auth_user: str, password: str
) -> Phone:
    p = await Phone(from_user, auth_user, password).open()
    opened.append(p)
    return p


# --- the tests ---------------------------------------------------------------------


async def test_ami_greets_and_checks_the_secret(pbx: Pbx) -> None:
    good = await Ami.connect()
    assert good.greeting.startswith(b"Asterisk Call Manager/")
    reply = await good.login()
    assert reply["Response"] == "Success", reply
    assert (await good.wait_for(Event="FullyBooted"))["Privilege"] == "system,all"
    await good.close()

    bad = await Ami.connect()
    reply = await bad.login(secret=SETTINGS.ami_secret + "x")
    assert reply == {**reply, "Response": "Error", "Message": "Authentication failed"}
    await bad.close()


async def test_every_desk_is_a_leastrecent_queue(pbx: Pbx) -> None:
    shown = await pbx.cli("queue show")
    for desk in SETTINGS.desks:
        assert re.search(
            rf"^{desk} has 0 calls .* in 'leastrecent' strategy", shown, re.M
        ), shown


async def test_required_modules_are_running(pbx: Pbx) -> None:
    conf = (pbx.instance_dir / "etc" / "modules.conf").read_text()
    wanted = re.findall(r"^(?:pre)?load\s*=>\s*(\S+)", conf, re.M)
    assert "chan_pjsip.so" in wanted and "res_agi.so" in wanted
    shown = await pbx.cli("module show")
    running = set(re.findall(r"^(\S+\.so)\s.*\sRunning\s", shown, re.M))
    assert set(wanted) <= running, set(wanted) - running
    assert "hold-tone" in await pbx.cli("moh show files")


def _inet_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(proto, local address, port) of every IPv4/IPv6 socket of ``pid``."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = (
            os.readlink(f"/proc/{pid}/fd/{fd}")
            if os.path.exists(f"/proc/{pid}/fd/{fd}")
            else ""
        )
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        for line in Path(f"/proc/{pid}/net/{proto}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] not in inodes:
                continue
            addr, port = fields[1].split(":")
            if len(addr) == 8:
                host = socket.inet_ntop(socket.AF_INET, bytes.fromhex(addr)[::-1])
            else:
                raw = b"".join(
                    bytes.fromhex(addr[i : i + 8])[::-1] for i in range(0, 32, 8)
                )
                host = socket.inet_ntop(socket.AF_INET6, raw)
            found.append((proto, host, int(port, 16)))
    return found


async def test_listens_on_loopback_only(pbx: Pbx, phones: list[Phone]) -> None:
    caller = await phone(phones, CALLER, "pstn", SETTINGS.pstn_password)
    assert (await caller.call("12345"))[-1] == 200  # so that RTP is open too
    sockets = _inet_sockets(pbx._current_pid())
    assert await caller.bye() == 200
    assert ("tcp", "127.0.0.1", SETTINGS.ami_port) in sockets, sockets
    assert ("udp", "127.0.0.1", SETTINGS.sip_port) in sockets, sockets
    assert ("udp", "127.0.0.1", caller.remote_rtp) in sockets, sockets
    assert SETTINGS.rtp_start <= caller.remote_rtp <= SETTINGS.rtp_end
    assert [s for s in sockets if s[0].startswith("tcp") and s[1] != "127.0.0.1"] == []
    # The only wildcard sockets are the two (IPv4, IPv6) that res_pjsip opens
    # for its DNS resolver's queries: never on a port of ours.
    wildcard = [s for s in sockets if s[1] != "127.0.0.1"]
    assert len(wildcard) <= 2 and {s[1] for s in wildcard} <= {"0.0.0.0", "::"}
    ours = {
        SETTINGS.sip_port,
        SETTINGS.ami_port,
        *range(SETTINGS.rtp_start, SETTINGS.rtp_end + 1),
    }
    assert not ours & {s[2] for s in wildcard}, wildcard


async def test_caller_is_the_from_user_and_the_server_drives_the_ivr(
    pbx: Pbx, ami: Ami, phones: list[Phone]
) -> None:
    caller = await phone(phones, CALLER, "pstn", SETTINGS.pstn_password)
    # Challenged first: the From user is no endpoint, the auth username is.
    assert await caller.call("12345") == [401, 200]
    start = await ami.wait_for(Event="AsyncAGIStart")
    assert start["CallerIDNum"] == CALLER
    assert start["Channel"].startswith("PJSIP/pstn-")
    assert start["Context"] == "yht-hotline"
    channel = start["Channel"]

    async def agi(command: str) -> str:
        command_id = secrets.token_hex(4)
        await ami.send("AGI", Channel=channel, Command=command, CommandID=command_id)
        done = await ami.wait_for(Event="AsyncAGIExec", CommandId=command_id)
        return done["Result"]

    # RFC 4733 digits reach the IVR, and AMI reports them (class dtmf).
    wait = asyncio.create_task(agi("WAIT FOR DIGIT 5000"))
    await asyncio.sleep(0.3)
    caller.dtmf("5")
    assert await wait == "200%20result%3D53%0A"  # '5' is ASCII 53
    assert await agi("SET VARIABLE YHT_DESK business") == "200%20result%3D1%0A"
    await agi("SET VARIABLE YHT_PRIORITY 7")
    assert await agi("ASYNCAGI BREAK") == "200%20result%3D0%0A"
    joined = await ami.wait_for(Event="QueueCallerJoin")
    assert joined["Queue"] == "business" and joined["CallerIDNum"] == CALLER
    assert "prio: 7" in await pbx.cli("queue show business")
    assert await caller.bye() == 200
    await ami.wait_for(Event="Hangup", Channel=channel)
    # The account's eventfilter: a call and AGI commands make Newstate and
    # AGIExecStart/End, none of which reach the server.
    assert {"AsyncAGIExec", "QueueCallerJoin", "Hangup"} <= ami.seen
    assert not ami.seen & set(SERVER_UNUSED_EVENTS), ami.seen


async def test_dtmf_events_reach_ami(pbx: Pbx, ami: Ami, phones: list[Phone]) -> None:
    caller = await phone(phones, CALLER, "pstn", SETTINGS.pstn_password)
    assert (await caller.call("12345"))[-1] == 200
    start = await ami.wait_for(Event="AsyncAGIStart")
    await ami.send("AGI", Channel=start["Channel"], Command="WAIT FOR DIGIT 5000")
    await asyncio.sleep(0.3)
    caller.dtmf("#")
    end = await ami.wait_for(Event="DTMFEnd", Channel=start["Channel"])
    assert end["Digit"] == "#" and end["Privilege"] == "dtmf,all"
    assert await caller.bye() == 200


async def test_callers_reach_general_while_the_server_is_away(
    pbx: Pbx, phones: list[Phone]
) -> None:
    caller = await phone(phones, CALLER, "pstn", SETTINGS.pstn_password)
    assert (await caller.call("12345"))[-1] == 200
    await asyncio.sleep(0.5)
    assert "PJSIP/pstn-" in await pbx.cli("queue show general")
    name = re.search(r"^(PJSIP/pstn-\S+)", await pbx.cli("core show channels"), re.M)[1]
    shown = await pbx.cli(f"core show channel {name}")
    assert "YHT_FALLBACK=server-offline" in shown and "YHT_DESK=general" in shown
    assert f"Caller ID: {CALLER}" in shown
    assert await caller.bye() == 200


async def test_only_12345_is_served(pbx: Pbx, phones: list[Phone]) -> None:
    caller = await phone(phones, CALLER, "pstn", SETTINGS.pstn_password)
    assert await caller.call("12346") == [401, 404]
    assert (await caller.call("6001"))[-1] == 404  # no reaching agents directly
    wrong = await phone(phones, CALLER, "pstn", "not-the-password")
    assert await wrong.call("12345") == [401, 401]
    nobody = await phone(phones, CALLER, "nobody", SETTINGS.pstn_password)
    assert await nobody.call("12345") == [401, 401]


async def test_trunks_and_agents_dial_nothing_outside(
    pbx: Pbx, phones: list[Phone]
) -> None:
    trunk = await phone(phones, "trunk-110", "trunk-110", SETTINGS.trunks["trunk-110"])
    # from-trunks answers nothing: Hangup() before answer is 603 Decline.
    assert await trunk.call("12345") == [401, 603]
    assert await trunk.call("6001") == [401, 603]
    agent = await phone(phones, "6001", "6001", SETTINGS.agents["6001"])
    assert (await agent.call("12345"))[-1] == 404
    assert (await agent.call(CALLER))[-1] == 404


async def test_agents_and_trunks_register_once(pbx: Pbx, phones: list[Phone]) -> None:
    password = SETTINGS.agents["6002"]
    first = await phone(phones, "6002", "6002", password)
    assert await first.register() == [401, 200]
    second = await phone(phones, "6002", "6002", password)
    assert await second.register() == [401, 200]
    contacts = await pbx.cli("pjsip show aor 6002")
    # max_contacts=1 with remove_existing: the newer phone replaced the older.
    assert f"127.0.0.1:{second.port}" in contacts
    assert f"127.0.0.1:{first.port}" not in contacts
    intruder = await phone(phones, "6003", "6003", "guess")
    assert await intruder.register() == [401, 401]
    trunk = await phone(phones, "trunk-110", "trunk-110", SETTINGS.trunks["trunk-110"])
    assert await trunk.register() == [401, 200]


async def test_endpoints_share_media_settings(pbx: Pbx) -> None:
    contexts = {"pstn": "from-pstn", "6001": "agents", "6008": "agents"}
    contexts["trunk-110"] = "from-trunks"
    for endpoint, context in contexts.items():
        shown = await pbx.cli(f"pjsip show endpoint {endpoint}")
        options = dict(re.findall(r"^ (\w+)\s+: (.*?)\s*$", shown, re.M))
        assert options["context"] == context, endpoint
        assert options["rtp_timeout"] == "30", endpoint
        assert options["dtmf_mode"] == "rfc4733", endpoint
        assert options["allow"] == "(ulaw|alaw)", endpoint
        assert options["media_address"] == "127.0.0.1", endpoint


def _wav(path: Path, seconds: float = 0.3) -> None:
    import wave

    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x10\x00\xf0\xff" * int(4000 * seconds))


async def test_prompts_are_played_by_language(
    pbx: Pbx, ami: Ami, phones: list[Phone], tmp_path: Path
) -> None:
    _wav(tmp_path / "zh" / "yht-test.wav")
    _wav(tmp_path / "en" / "beep.wav")  # shadows the stock beep, for en only
    pbx.install_prompts(tmp_path)
    copied = pbx.sounds_dir / "zh" / "yht-test.wav"
    assert copied.read_bytes() == (tmp_path / "zh" / "yht-test.wav").read_bytes()
    beep = pbx.sounds_dir / "en" / "beep.wav"
    assert beep.is_file() and not beep.is_symlink()
    assert (pbx.sounds_dir / "en" / "beep.gsm").is_symlink()  # stock, untouched
    before = copied.stat().st_mtime_ns
    pbx.install_prompts(tmp_path)
    assert copied.stat().st_mtime_ns == before  # unchanged files are not copied

    caller = await phone(phones, CALLER, "pstn", SETTINGS.pstn_password)
    assert (await caller.call("12345"))[-1] == 200
    channel = (await ami.wait_for(Event="AsyncAGIStart"))["Channel"]

    async def agi(command: str) -> str:
        command_id = secrets.token_hex(4)
        await ami.send("AGI", Channel=channel, Command=command, CommandID=command_id)
        done = await ami.wait_for(Event="AsyncAGIExec", CommandId=command_id)
        return urllib.parse.unquote(done["Result"])

    await agi("SET VARIABLE CHANNEL(language) zh")
    played = await agi('STREAM FILE yht-test ""')
    assert re.fullmatch(r"200 result=0 endpos=[1-9]\d*\n", played), played
    # Stock English sounds are the fallback for every language.
    played = await agi('STREAM FILE silence/1 ""')
    assert re.fullmatch(r"200 result=0 endpos=[1-9]\d*\n", played), played
    assert await caller.bye() == 200
    beep.unlink()  # the next render links the stock beep again


async def test_secrets_stay_in_owner_only_files(pbx: Pbx) -> None:
    etc = pbx.instance_dir / "etc"
    for path in etc.iterdir():
        text = path.read_text()
        assert "@@" not in text, path
        holds_secret = SETTINGS.ami_secret in text or SETTINGS.pstn_password in text
        assert (path.stat().st_mode & 0o077 == 0) or not holds_secret, path
    assert (etc / "manager.conf").stat().st_mode & 0o777 == 0o600
    assert (etc / "pjsip.conf").stat().st_mode & 0o777 == 0o600
    assert pbx.asterisk_path(etc) == "/srv/yihaotong/pbxtest/etc" or not pbx.chrooted


async def test_a_second_start_is_refused_unless_reused(pbx: Pbx) -> None:
    other = Pbx(SETTINGS, root=pbx.root)
    with pytest.raises(PbxError, match="already running"):
        await other.start()
    await other.start(reuse=True)
    assert other.running


async def test_paths_for_a_system_asterisk() -> None:
    system = Pbx(SETTINGS, root=Path("/"))
    assert not system.chrooted
    assert system.instance_dir == Path(__file__).parents[2] / "var/asterisk/pbxtest"
    assert system.asterisk_path(system.sounds_dir) == str(system.sounds_dir)


async def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PbxError, match="ami_secret"):
        Pbx(PbxSettings(name="x", pstn_password="p"), root=tmp_path).render()
    with pytest.raises(PbxError, match="agents"):
        Pbx(
            PbxSettings(
                name="x", ami_secret="s", pstn_password="p", agents={"60 01": "pw"}
            ),
            root=tmp_path,
        ).render()


async def test_start_stop_kill(pbx: Pbx, tmp_path: Path) -> None:
    settings = PbxSettings(
        name="pbxtest2",
        sip_port=25061,
        ami_port=25039,
        rtp_start=27000,
        rtp_end=27099,
        ami_secret="s2",
        pstn_password="p2",
    )
    second = Pbx(settings, root=pbx.root)
    await second.start()
    assert second.running and pbx.running  # side by side
    assert "Asterisk 22" in await second.cli("core show version")
    await second.stop()
    assert not second.running
    assert not second.control_socket.exists()
    await second.stop()  # idempotent
    await second.start()
    await second.kill()
    assert not second.running
    await second.start()  # over the stale control socket of the killed one
    await second.stop()
    with pytest.raises(PbxError, match="pbxtest2"):
        await second.cli("core show version")
    # The first instance did not notice.
    assert "Asterisk 22" in await pbx.cli("core show version")
