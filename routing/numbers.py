"""Telephone numbers the server may put into a Dial() string (pure).

A callback or follow-up call dials the caller's number through
``callback_dial`` (``PJSIP/{number}@pstn-out``). Dial() reads its argument
unquoted: a ``,`` starts its options (``M()``, ``U()`` run macros and
subroutines), ``&`` adds another destination and ``/`` another technology or
path. The caller ID is whatever the trunk (or a forger) sent: only plain
numbers get through.
"""

from __future__ import annotations

import re

# [0-9], not \d: \d also matches other scripts' digits, which no trunk dials.
_DIALABLE = re.compile(r"\+?[0-9]{1,20}")


def dialable_number(value: object) -> str:
    """``value`` when it is ``+`` (optional) and 1 to 20 digits; ValueError
    naming it otherwise.

    The message holds the number unmasked: log ``ivr.log.mask_number(value)``
    rather than the message.
    """
    if not isinstance(value, str) or not _DIALABLE.fullmatch(value):
        raise ValueError(
            f"number {value!r} is not dialable: "
            "only an optional + and 1 to 20 digits 0-9 go into a Dial() string"
        )
    return value


def is_dialable(value: object) -> bool:
    """Whether :func:`dialable_number` takes ``value``."""
    return isinstance(value, str) and bool(_DIALABLE.fullmatch(value))
