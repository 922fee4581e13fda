"""Ticket writes tried again while the store is busy or failing.

A failed write rolls back whole, so running it again is safe. One routine
for every component that writes tickets outside the call tracker's queue
(and for that queue too), so they all give up the same way: late, and with
an error an operator can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from ivr import log
from ivr.errors import TicketStoreError

# Pauses (seconds) between tries: about 8 minutes in all, longer than a
# locked database or a restarted PostgreSQL usually takes.
STORE_RETRY_DELAYS = (0.5, 1, 2, 5, 10, 30, 60, 120, 240)


async def retry_store(
    job: Callable[[], Awaitable[object]],
    what: str,
    delays: Iterable[float] = STORE_RETRY_DELAYS,
) -> bool:
    """Run ``job`` until it does not raise TicketStoreError, pausing
    ``delays`` between tries; False (and an error logged) when it never
    succeeded. ``what`` names the write in the logs."""
    delays = tuple(delays)
    for delay in (*delays, None):
        try:
            await job()
            return True
        except TicketStoreError as exc:
            if delay is None:
                log.tickets.error(
                    "%s: not stored after %d tries, given up: %s",
                    what,
                    len(delays) + 1,
                    exc,
                )
                return False
            log.tickets.warning(
                "%s: not stored yet (%s); trying again in %s s", what, exc, delay
            )
            await asyncio.sleep(delay)
    return False
