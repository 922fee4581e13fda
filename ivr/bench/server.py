"""The hotline server as the bench runs it: a process of its own, with counters.

``python -m ivr.bench.server CONFIG STATS [--proposals=a,b]`` serves like
``hotline serve`` and, once ready and on every SIGUSR1, writes its counters to
STATS as JSON, so that the bench measures the server's CPU from /proc without
sharing it. ``--proposals`` patches in the fixes of :mod:`ivr.bench.proposals`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from ivr import config as config_module
from ivr import log
from ivr.server import HotlineServer


def _stats(server: HotlineServer, seq: int) -> dict:
    engine, tracker, store = server.engine, server.tracker, server.store
    return {
        "seq": seq,
        "pid": os.getpid(),
        "at": time.time(),
        "ready": server.ready.is_set(),
        "ami_events": server.session.events_received,
        "ticket_writes": store.writes if store else 0,
        "calls_routed": engine.calls_routed if engine else 0,
        "calls_in_menu": engine.active if engine else 0,
        "calls_seen": tracker.calls_seen if tracker else 0,
        "calls_ended": tracker.calls_ended if tracker else 0,
        "mqtt_pending": server.bus.pending,
        "mqtt_published": server.bus.published,
    }


async def _serve(config_path: str, stats_path: Path) -> int:
    server = HotlineServer(config_module.load(config_path))
    seq = itertools.count(1)

    def dump() -> None:
        tmp = stats_path.with_name(stats_path.name + ".tmp")
        tmp.write_text(json.dumps(_stats(server, next(seq))))
        tmp.replace(stats_path)

    async def when_ready() -> None:
        await server.ready.wait()
        dump()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    loop.add_signal_handler(signal.SIGUSR1, dump)
    ready = asyncio.create_task(when_ready(), name="bench-ready")
    try:
        await server.run()
    finally:
        ready.cancel()
    dump()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(argv if argv is not None else sys.argv[1:])
    wanted = [a.split("=", 1)[1] for a in args if a.startswith("--proposals=")]
    config_path, stats_path = [a for a in args if not a.startswith("--")]
    log.setup(os.environ.get("YHT_LOG_LEVEL", "INFO"))
    logging.captureWarnings(True)
    if wanted:
        from ivr.bench import proposals

        proposals.apply(wanted[0].split(","))
    return asyncio.run(_serve(config_path, Path(stats_path)))


if __name__ == "__main__":
    sys.exit(main())
