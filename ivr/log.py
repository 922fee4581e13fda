"""Named loggers, one per subsystem, and masking of caller numbers.

Caller numbers are personal data: anything that writes a number to a log goes
through :func:`mask_number` first (13800000000 -> 138****0000).
"""

from __future__ import annotations

import logging
import re

ami = logging.getLogger("yihaotong.ami")
ivr = logging.getLogger("yihaotong.ivr")
routing = logging.getLogger("yihaotong.routing")
tickets = logging.getLogger("yihaotong.tickets")
mqtt = logging.getLogger("yihaotong.mqtt")
web = logging.getLogger("yihaotong.web")
pbx = logging.getLogger("yihaotong.pbx")
phones = logging.getLogger("yihaotong.phones")
demo = logging.getLogger("yihaotong.demo")

_DIGITS = re.compile(r"\d")


def mask_number(number: str | None) -> str:
    """Hide the middle of a phone number: keep 3 leading and 4 trailing digits."""
    if not number:
        return "-"
    digits = _DIGITS.findall(number)
    if len(digits) <= 7:
        # Extensions and short service numbers (110, 12345, 6001) are not personal.
        return number
    return f"{''.join(digits[:3])}****{''.join(digits[-4:])}"


def setup(level: str = "INFO", ami_debug: bool = False) -> None:
    """Configure console logging for the command-line tools."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Raw AMI traffic is per-event chatter: only behind its own switch.
    if ami_debug:
        ami.setLevel(logging.DEBUG)
