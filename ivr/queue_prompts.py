"""What callers hear while they wait: app_queue's announcements in Mandarin.

app_queue says a caller's position and the expected wait with fixed file
names (``queue-thereare``, ``queue-holdtime``, ...) and numbers from
``digits/<n>``, looked up in the channel's language; the dialplan sets the
language to the caller's (Mandarin unless the menu chose another). Until
someone records them, espeak-ng speaks placeholders from the texts below,
exactly like the dial plan's own prompts (:mod:`ivr.prompts`). The callback
offer and its confirmation are ours and played by the dialplan.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ivr import log
from ivr.errors import HotlineError
from ivr.prompts import speak_if_changed

LANGUAGE = "zh"

TEXTS = {
    "queue-thereare": "您前面还有",
    "queue-callswaiting": "位来电正在等待",
    "queue-youarenext": "您是下一位，请稍候",
    "queue-holdtime": "预计等待时间约",
    "queue-minute": "分钟",
    "queue-minutes": "分钟",
    "queue-seconds": "秒",
    "queue-thankyou": "感谢您的耐心等待",
    "yht-callback-offer": "如需稍后回电并保留您的排队位置，请按1；继续等待请不要按键。",
    "yht-callback-confirm": (
        "已为您登记回电，坐席空闲时将按您原来的排队顺序回电。再见。"
    ),
}

_NUMERALS = "零一二三四五六七八九"


def _chinese(number: int) -> str:
    if number < 10:
        return _NUMERALS[number]
    tens, ones = divmod(number, 10)
    text = ("" if tens == 1 else _NUMERALS[tens]) + "十"
    return text + (_NUMERALS[ones] if ones else "")


# Whatever way Asterisk's say.c splits a number (20 + 3, or 2 + 10 + 3), each
# file says its own number, so the sum is always right.
DIGITS = {
    **{f"digits/{n}": _chinese(n) for n in range(21)},
    **{f"digits/{n}": _chinese(n) for n in range(30, 100, 10)},
    "digits/hundred": "百",
    "digits/thousand": "千",
}


def build_queue_prompts(recordings: Path, out: Path) -> list[str]:
    """Speak every waiting prompt nobody recorded into ``out/zh``; the names made.

    Idempotent: a placeholder is remade only when its text changed.
    """
    if shutil.which("espeak-ng") is None:
        raise HotlineError(
            "espeak-ng is needed to make placeholder prompts: apt-get install espeak-ng"
        )
    made = []
    for name, text in {**TEXTS, **DIGITS}.items():
        if (recordings / LANGUAGE / f"{name}.wav").exists():
            continue
        if speak_if_changed(text, out / LANGUAGE / f"{name}.wav"):
            made.append(name)
    if made:
        log.pbx.info("made %d queue prompts in %s", len(made), out)
    return made
