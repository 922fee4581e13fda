"""The menu watchdog: a dead server never leaves a caller in AsyncAGI.

The dialplan sets ``TIMEOUT(absolute)`` before ``AGI(agi:async)``; when it
runs out, Asterisk ends AGI and the ``T`` extension sends the caller to the
general desk (``YHT_FALLBACK=server-lost``). While the server drives a call it
pushes the timeout back every ``period`` seconds with one AMI ``Setvar`` per
call in a menu, out of band: an in-band AGI command would wait behind the
prompt that is playing.

A refresh that lands after ``ASYNCAGI BREAK`` would arm the timeout again
while the caller waits in the queue. ``release`` closes that window: it waits
for a refresh in flight to be answered (AMI runs a session's actions in order)
and no refresh is sent for that channel afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable

from ivr import log
from ivr.errors import AmiError

# The dialplan's first TIMEOUT(absolute) is the same (asterisk/conf).
TIMEOUT = 8.0
PERIOD = 2.0
# The dialplan context whose T extension takes a lost caller to the general desk.
WATCHDOG_CONTEXT = "yht-hotline"


class MenuWatchdog:
    def __init__(
        self,
        session,
        channels: Callable[[], Iterable[str]],
        *,
        timeout: float = TIMEOUT,
        period: float = PERIOD,
    ) -> None:
        if not 0 < period < timeout:
            raise ValueError(
                f"watchdog period {period!r} must be above 0 and below the "
                f"timeout {timeout!r}"
            )
        self.session = session
        self._channels = channels
        self.timeout = timeout
        self.period = period
        self._locks: dict[str, asyncio.Lock] = {}
        self._released: set[str] = set()
        self.refreshes = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            if self.session.connected:
                await self.refresh()

    async def refresh(self) -> None:
        """Push back the timeout of every call still in a menu."""
        live = set(self._channels())
        # Forget channels that left AGI: the sets stay as small as the menus.
        for gone in set(self._locks) - live:
            del self._locks[gone]
        self._released &= live
        await asyncio.gather(
            *(self._refresh(name) for name in live if name not in self._released)
        )

    async def _refresh(self, channel: str) -> None:
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:
            if channel in self._released:
                return
            try:
                await self.session.action(
                    "Setvar",
                    {
                        "Channel": channel,
                        "Variable": "TIMEOUT(absolute)",
                        "Value": f"{self.timeout:g}",
                    },
                    timeout=self.period,
                )
                self.refreshes += 1
            except AmiError as exc:
                # Gone already, or the link is down: either way the dialplan's
                # timeout takes over, which is the point.
                log.ivr.debug("watchdog refresh of %s failed: %s", channel, exc)

    async def release(self, channel: str) -> None:
        """Stop refreshing ``channel``; call before ``ASYNCAGI BREAK``."""
        self._released.add(channel)
        lock = self._locks.get(channel)
        if lock is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(self.period + 1):
                    await lock.acquire()
                    lock.release()
