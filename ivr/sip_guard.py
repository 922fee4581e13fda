"""Repeated SIP authentication failures from one address, reported.

Asterisk sends a ``security`` class AMI event for every failed attempt to
register or call: a wrong password (``ChallengeResponseFailed``,
``InvalidPassword``) or an account that does not exist
(``InvalidAccountID``). The guard counts them per remote IP address over a
sliding window; at ``limit`` failures it logs one line an operator can act on
and publishes ``alarm.sip_auth`` on ``alarms/sip`` (not retained: one alarm
an attack), then stays quiet about that address for the rest of the window.

With a ``SipBlocker`` (``[asterisk] sip_blocklist`` names the PJSIP ACL
file that pjsip.conf includes) the address is also denied: the file gets a
``type = acl`` section with one ``deny`` a blocked address, and PJSIP is
reloaded, so Asterisk answers that address 403 before any authentication.
A block lasts ``block_for`` seconds. This host's own address (127.0.0.1,
::1, and their IPv4-mapped forms) is never blocked, nor the networks of ``[asterisk]
sip_never_block`` (the carrier's SBC, the agents' subnet): UDP source
addresses are easily spoofed, and a few forged failures must not cut off
every citizen's call. A firewall (fail2ban on Asterisk's security log, the
carrier's SBC) still does this better, before the packets reach Asterisk.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from panoramisk.message import Message

from ivr import log
from ivr.errors import AmiError

FAILURES = frozenset({"ChallengeResponseFailed", "InvalidPassword", "InvalidAccountID"})
ALARM_TOPIC = "alarms/sip"


@dataclass(frozen=True)
class Attempt:
    at: float
    event: str
    account: str


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


# Never blocked, whatever the configuration says.
HOST_ADDRESSES = frozenset(
    {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
)


def never_block_networks(
    values, key: str = "[asterisk] sip_never_block"
) -> tuple[Network, ...]:
    """CIDR strings (``"10.0.0.0/8"``, a bare address) -> networks;
    ValueError naming ``key`` and the bad value."""
    if not isinstance(values, list | tuple):
        raise ValueError(f'{key} must be a list such as ["10.0.0.0/8"], not {values!r}')
    networks = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError(f"{key}: {value!r} is not a CIDR string")
        try:
            networks.append(ipaddress.ip_network(value.strip()))
        except ValueError as exc:
            raise ValueError(f"{key}: {value!r} is not a network ({exc})") from None
    return tuple(networks)


def remote_ip(remote_address: str) -> str:
    """``IPV4/UDP/203.0.113.9/5060`` -> ``203.0.113.9`` ('' if unreadable)."""
    parts = remote_address.split("/")
    if len(parts) >= 4 and parts[0] in ("IPV4", "IPV6"):
        return "/".join(parts[2:-1])
    return ""


class SipGuard:
    # Addresses remembered at most, so a spray from many cannot fill memory.
    MAX_ADDRESSES = 10_000

    def __init__(
        self,
        events=None,
        *,
        blocker: SipBlocker | None = None,
        limit: int = 5,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window <= 0:
            raise ValueError(
                f"SIP guard limit {limit!r} and window {window!r} s must be positive"
            )
        self._events = events
        self.blocker = blocker
        self.limit = limit
        self.window = window
        self._clock = clock
        self._attempts: collections.OrderedDict[str, collections.deque[Attempt]] = (
            collections.OrderedDict()
        )
        self._reported: dict[str, float] = {}  # address -> when
        self.alarms = 0

    def handle(self, event: Message) -> None:
        name = event.get("Event", "")
        if name not in FAILURES:
            return
        address = remote_ip(event.get("RemoteAddress", ""))
        if not address:
            return
        now = self._clock()
        attempts = self._attempts.pop(address, None) or collections.deque()
        # Account names come from the attacker: keep them short and printable.
        account = "".join(c for c in event.get("AccountID", "") if c.isprintable())
        attempts.append(Attempt(now, name, account[:64]))
        while attempts and now - attempts[0].at > self.window:
            attempts.popleft()
        self._attempts[address] = attempts
        while len(self._attempts) > self.MAX_ADDRESSES:
            self._attempts.popitem(last=False)
        if len(attempts) >= self.limit and not self._quiet(address, now):
            self._report(address, attempts, event.get("Service", "SIP"))

    def _quiet(self, address: str, now: float) -> bool:
        reported = self._reported.get(address)
        return reported is not None and now - reported < self.window

    def _report(self, address: str, attempts, service: str) -> None:
        now = self._clock()
        # Reports older than the window silence nothing (_quiet): forget them.
        for old in [a for a, at in self._reported.items() if now - at >= self.window]:
            del self._reported[old]
        self._reported[address] = now
        self.alarms += 1
        # An account tried may be somebody's phone number: masked like one.
        accounts = sorted({log.mask_number(a.account) for a in attempts if a.account})
        kinds = sorted({a.event for a in attempts})
        log.ivr.warning(
            "ALARM SIP: %d failed authentications from %s within %.0f s "
            "(%s; accounts %s): block this address at the firewall",
            len(attempts),
            address,
            self.window,
            ", ".join(kinds),
            ", ".join(accounts) or "-",
        )
        if self._events is not None:
            self._events.publish(
                "alarm.sip_auth",
                ALARM_TOPIC,
                {
                    "address": address,
                    "failures": len(attempts),
                    "window_seconds": self.window,
                    "kinds": kinds,
                    "accounts": accounts,
                    "service": service,
                    "blocked": self.blocker is not None
                    and self.blocker.may_block(address),
                },
            )
        if self.blocker is not None:
            self.blocker.request(address)

    async def run(self) -> None:
        """Apply blocks (and lift expired ones); a no-op without a blocker."""
        if self.blocker is None:
            await asyncio.Event().wait()
        await self.blocker.run()


class SipBlocker:
    """Denies addresses in a PJSIP ACL file Asterisk includes, then reloads."""

    SECTION = "yht-blocked"

    def __init__(
        self,
        session,
        path: str | Path,
        *,
        block_for: float = 3600.0,
        never_block=(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.session = session
        self.path = Path(path)
        self.never_block = never_block_networks(never_block)
        self.block_for = block_for
        self._clock = clock
        self.blocked: dict[str, float] = {}  # address -> until (clock time)
        self._wanted: asyncio.Queue[str] = asyncio.Queue()
        self.reloads = 0

    def may_block(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        # ::ffff:127.0.0.1 is 127.0.0.1 and ::ffff:10.1.2.3 is in 10.0.0.0/8.
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if ip in HOST_ADDRESSES:
            # The host's own services (the server, a local proxy) speak from
            # here; other loopback addresses are no one's and may be blocked.
            return False
        return not any(ip in network for network in self.never_block)

    def request(self, address: str) -> None:
        if self.may_block(address):
            self._wanted.put_nowait(address)
        else:
            log.ivr.warning(
                "SIP: not blocking %r (this host, unreadable or in "
                "[asterisk] sip_never_block)",
                address,
            )

    async def run(self) -> None:
        # Blocks left by the previous run are not known to this one: lift them.
        if await asyncio.to_thread(self._holds_blocks):
            await self.session.wait_connected()
            await self._apply()
        while True:
            address = None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    address = await self._wanted.get()
            now = self._clock()
            expired = [a for a, until in self.blocked.items() if until <= now]
            for gone in expired:
                del self.blocked[gone]
                log.ivr.info("SIP: block of %s lifted", gone)
            if address is not None:
                self.blocked[address] = now + self.block_for
                log.ivr.warning(
                    "SIP: blocking %s for %.0f s (PJSIP ACL %s)",
                    address,
                    self.block_for,
                    self.path.name,
                )
            if address is not None or expired:
                await self._apply()

    async def _apply(self) -> None:
        await asyncio.to_thread(self._write)
        try:
            # Reloads pjsip.conf with the file it includes; calls go on.
            await self.session.command("module reload res_pjsip.so")
            self.reloads += 1
        except AmiError as exc:
            log.ivr.error("SIP: could not reload PJSIP for the blocklist: %s", exc)

    def _holds_blocks(self) -> bool:
        try:
            return "deny" in self.path.read_text(encoding="utf-8")
        except OSError:
            return False

    def _write(self) -> None:
        lines = [
            "; Written by the yihaotong server (ivr/sip_guard.py): addresses that",
            "; failed SIP authentication too often. Do not edit: it is rewritten.",
        ]
        if self.blocked:
            lines += [f"[{self.SECTION}]", "type = acl"]
            for address in sorted(self.blocked):
                ip = ipaddress.ip_address(address)
                lines.append(f"deny = {ip}/{ip.max_prefixlen}")
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)
