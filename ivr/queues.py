"""Asterisk's queues over AMI: the actions an agent decision becomes, and reads.

``queue_status`` waits out the start of Asterisk, when the manager interface
already takes logins but app_queue is not loaded yet.
"""

from __future__ import annotations

import asyncio
import time

from panoramisk.message import Message

from ivr.errors import AmiActionError
from routing.agents import DEVICE_STATES, Action, MemberSnapshot


async def queue_status(
    session, queue: str | None = None, *, patience: float = 15.0
) -> Message:
    """``QueueStatus`` (of one queue, or all), waiting for app_queue to load.

    The manager interface takes logins early in Asterisk's start, before
    app_queue is loaded and while it answers "Invalid/unknown command".
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            return await session.action(
                "QueueStatus", {"Queue": queue} if queue else {}, collect_events=True
            )
        except AmiActionError as exc:
            if "unknown command" not in str(exc).lower():
                raise
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)


def ami_action(action: Action) -> tuple[str, dict]:
    """The manager action (name, headers) that carries out ``action``."""
    if action.kind == "add":
        return "QueueAdd", {
            "Queue": action.queue,
            "Interface": action.interface,
            "StateInterface": action.interface,
            "MemberName": action.extension,
            "Penalty": action.penalty,
            "Paused": "true" if action.paused else "false",
            "Reason": action.reason or None,
        }
    if action.kind == "remove":
        return "QueueRemove", {"Queue": action.queue, "Interface": action.interface}
    if action.kind in ("pause", "unpause"):
        return "QueuePause", {
            "Interface": action.interface,
            "Paused": "true" if action.kind == "pause" else "false",
            "Queue": action.queue,
            "Reason": action.reason or None,
        }
    if action.kind == "penalty":
        return "QueuePenalty", {
            "Interface": action.interface,
            "Penalty": action.penalty,
            "Queue": action.queue,
        }
    if action.kind == "hangup":
        return "Hangup", {"Channel": action.channel}
    raise ValueError(f"unknown agent action {action.kind!r}")


def member_snapshot(event: Message) -> MemberSnapshot:
    """A ``QueueMember`` event of ``QueueStatus`` as the router reads it."""
    return MemberSnapshot(
        queue=event.get("Queue", ""),
        penalty=_int(event.get("Penalty")),
        paused=event.get("Paused") == "1",
        reason=event.get("PausedReason", "") or "",
        last_pause=float(_int(event.get("LastPause"))),
        device=DEVICE_STATES.get(event.get("Status", ""), "unknown"),
    )


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
