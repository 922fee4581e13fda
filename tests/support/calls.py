"""Waiting for what real calls leave behind."""

from __future__ import annotations

import asyncio
import time


async def until(predicate, timeout: float, what: str, every: float = 0.1):
    """``predicate()``'s value once it is true; AssertionError naming
    ``what`` when it is still false after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(every)


def tracked_call(lab, number: str):
    """The server's tracked call from caller ``number``, or None."""
    for call in lab.server.tracker.calls.values():
        if call.caller_number == number:
            return call
    return None


async def closed_ticket(lab, *, caller: str = "", linkedid: str = "", timeout=15.0):
    """The ticket of a call once its outcome is written, with its timeline.

    The outcome comes with the caller's Hangup, which can follow the phone's
    own view of the end (and the satisfaction survey) by a moment.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await lab.server.tracker.drain()
        if linkedid:
            ticket = await lab.server.store.get(linkedid)
        else:
            (found,) = await lab.server.store.find(caller=caller)
            ticket = await lab.server.store.get(found["number"])
        if (ticket and ticket["outcome"]) or loop.time() > deadline:
            return ticket
        await asyncio.sleep(0.25)
