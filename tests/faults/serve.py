"""``hotline serve`` on a configuration given as JSON: the fault lab's server.

Run as ``python -m tests.faults.serve CONFIG.json [--busy-timeout=S]`` so
that a test can SIGKILL it like a crashed server, then start it again.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
from pathlib import Path

from ivr import log
from ivr.config import from_dict
from ivr.server import serve


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.serve")
    parser.add_argument("config", type=Path, help="the configuration, as JSON")
    parser.add_argument("--busy-timeout", type=float, default=30.0)
    args = parser.parse_args()
    log.setup("INFO")
    raw = json.loads(args.config.read_text(encoding="utf-8"))
    config = from_dict(raw, source=args.config, base=args.config.parent)
    config = dataclasses.replace(config, store_busy_timeout=args.busy_timeout)
    return asyncio.run(serve(config))


if __name__ == "__main__":
    raise SystemExit(main())
