"""SIGKILL in the middle of a burst of ticket writes loses no committed ticket.

A child process writes tickets as fast as it can and prints each number once
its transaction has committed; the test kills it mid-burst, then finds every
printed ticket in the store, complete, and ``PRAGMA integrity_check`` ok.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from ivr.tickets import TicketStore

REPO = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from ivr.tickets import TicketStore

    async def main(path):
        store = await TicketStore.open(path)
        n = 0
        while True:
            n += 1
            linkedid = f"burst.{n}"
            ticket = await store.open_ticket(
                linkedid=linkedid, channel=f"PJSIP/pstn-{n:08x}",
                caller_number="13900001234",
            )
            await store.update(linkedid, desk="general", keys=[{"key": "0"}])
            await store.record(linkedid, "routed", {"desk": "general"})
            await store.close_ticket(linkedid, outcome="answered")
            print(ticket["number"], linkedid, flush=True)

    asyncio.run(main(sys.argv[1]))
    """
)


async def test_every_committed_ticket_survives_sigkill(tmp_path):
    path = tmp_path / "tickets.db"
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(path),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    committed: list[tuple[str, str]] = []
    try:
        async with asyncio.timeout(60):
            while len(committed) < 40:
                line = await child.stdout.readline()
                assert line, "the writer died on its own"
                number, linkedid = line.decode().split()
                committed.append((number, linkedid))
    finally:
        # Mid-burst: the writer is inside its next transactions right now.
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL

    store = await TicketStore.open(path)
    try:
        assert await store.integrity_check() == "ok"
        for number, linkedid in committed:
            ticket = await store.get(number)
            assert ticket is not None, f"committed ticket {number} lost"
            assert ticket["linkedid"] == linkedid
            assert (ticket["status"], ticket["outcome"]) == ("closed", "answered")
            kinds = [event["kind"] for event in ticket["timeline"]]
            assert kinds == ["arrived", "routed", "ended"]
        # Whatever the kill interrupted is either whole or absent.
        for ticket in await store.find():
            assert ticket["channel"].startswith("PJSIP/pstn-")
    finally:
        await store.close()
