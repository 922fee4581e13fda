"""The shape of a dial plan: pydantic models for what a hotline's YAML may say.

A dial plan names the prompts, the skill desks (Asterisk queues), the menus and
what each key does. An action is a mapping with exactly one action word, and
the word present picks the model (``menu``, ``queue``, ``hangup``, ``play``,
``transfer``, ``collect``): a new action is one more model in ``_ACTIONS`` and
one more member of ``Action``.

Before any menu, a plan may play a ``notice`` until it expires, send
registered ``enterprises`` straight to their desk, and offer ``returning_callers``
their last desk on one key; ``mode: direct`` has no menus at all and picks a
desk from those facts alone. A desk may keep ``hours`` on ``days`` (see
:mod:`routing.hours`); its calls go to ``when_closed`` outside them.

These models check each value on its own; references between sections
(a key naming a desk) are checked in :mod:`routing.dialplan_check`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from routing.hours import (
    BEIJING,
    EVERY_DAY,
    TIME_RANGE_PATTERN,
    WEEKDAYS,
    WORKDAYS,
    parse_range,
)

DEFAULT_LANGUAGE = "zh"
GENERAL = "general"  # the desk of last resort; every plan must have it

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}$"
DTMF_PATTERN = r"^[0-9*#]$"
# Caller numbers as admins write them: 13800000000, +86 138 0000 0000, 010-65123456.
PHONE_PATTERN = r"^\+?[0-9][0-9 -]{1,24}[0-9]$"

# Names become file names (<lang>/<name>.wav), hence the strict pattern.
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Language = Annotated[str, Field(pattern=LANGUAGE_PATTERN)]
DtmfKey = Annotated[str, Field(pattern=DTMF_PATTERN)]
Seconds = Annotated[int, Field(ge=1, le=30)]
TimeRange = Annotated[str, Field(pattern=TIME_RANGE_PATTERN)]
PhoneNumber = Annotated[str, Field(pattern=PHONE_PATTERN)]


class _Model(BaseModel):
    # strict: "5" is not a number and "yes" is not a flag; say so instead.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Prompt(_Model):
    """A recording, by name: <prompts dir>/<lang>/<name>.wav."""

    text: dict[Language, Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        description="What the recording says, per language (zh required)."
    )

    def text_in(self, language: str) -> tuple[str, str]:
        """(language actually used, text): Mandarin when ``language`` is missing."""
        if language in self.text:
            return language, self.text[language]
        return DEFAULT_LANGUAGE, self.text.get(DEFAULT_LANGUAGE, "")


class Target(_Model):
    """A number calls may be transferred to (another hotline, 110, 120)."""

    name: str = Field(min_length=1, max_length=100)
    number: str = Field(pattern=r"^\+?[0-9]{3,20}$")


class Start(_Model):
    """What a call meets first."""

    greeting: Name | None = Field(None, description="Prompt played to every call.")
    menu: Name | None = Field(
        None, description="The first menu (required unless mode is direct)."
    )
    desk: Name | None = Field(
        None,
        description="mode: direct: the desk of callers no fact places elsewhere "
        "(default general).",
    )


class MenuAction(_Model):
    """Go to another menu (or the same one: repeat it)."""

    menu: Name


class QueueAction(_Model):
    """Hand the call to a desk's queue."""

    queue: Name
    priority: int = Field(0, ge=0, le=10, description="Higher is answered first.")


class HangupAction(_Model):
    """Play a goodbye prompt, then hang up."""

    hangup: Name


class PlayAction(_Model):
    """Play a prompt, then do ``then``."""

    play: Name
    then: Action


class TransferAction(_Model):
    """Transfer the call to a number from ``targets``."""

    transfer: Name


class Digits(_Model):
    min: int = Field(1, ge=1, le=32)
    max: int = Field(ge=1, le=32)

    @model_validator(mode="after")
    def _ordered(self) -> Digits:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


class Collect(_Model):
    prompt: Name
    digits: Digits
    timeout: Seconds = 10
    save_as: Name = Field(description="What the digits are, e.g. ticket_number.")
    then: Action


class CollectAction(_Model):
    """Ask for several digits (self-service), then do ``then``."""

    collect: Collect


_ACTIONS: dict[str, type[_Model]] = {
    "menu": MenuAction,
    "queue": QueueAction,
    "hangup": HangupAction,
    "play": PlayAction,
    "transfer": TransferAction,
    "collect": CollectAction,
}
ACTION_WORDS = tuple(_ACTIONS)
# Tags appear in pydantic's error locations; "action:" keeps them apart from
# the YAML keys of the same word.
_TAG = "action:"


def _action_kind(value: Any) -> str | None:
    for word, model in _ACTIONS.items():
        if isinstance(value, model):
            return _TAG + word
    if not isinstance(value, dict):
        return None
    present = [word for word in ACTION_WORDS if word in value]
    return _TAG + present[0] if len(present) == 1 else None


Action = Annotated[
    Annotated[MenuAction, Tag(_TAG + "menu")]
    | Annotated[QueueAction, Tag(_TAG + "queue")]
    | Annotated[HangupAction, Tag(_TAG + "hangup")]
    | Annotated[PlayAction, Tag(_TAG + "play")]
    | Annotated[TransferAction, Tag(_TAG + "transfer")]
    | Annotated[CollectAction, Tag(_TAG + "collect")],
    Discriminator(
        _action_kind,
        custom_error_type="action",
        custom_error_message="an action needs exactly one of: "
        + ", ".join(ACTION_WORDS),
    ),
]


# pydantic lists the key pattern but lets other keys through in the schema.
_ONLY_PATTERN = {"additionalProperties": False}


def _to_general() -> QueueAction:
    return QueueAction(queue=GENERAL)


class Menu(_Model):
    """Play ``prompt``, wait for one key, do what the key says."""

    prompt: Name
    timeout: Seconds = Field(5, description="Seconds to wait for a key.")
    retries: int = Field(
        2, ge=1, le=5, description="Failed attempts before on_failure."
    )
    invalid: Name | None = Field(None, description="Prompt played on a wrong key.")
    no_input: Name | None = Field(None, description="Prompt played on no key.")
    keys: dict[DtmfKey, Action] = Field(min_length=1, json_schema_extra=_ONLY_PATTERN)
    on_failure: Action = Field(default_factory=_to_general)


def _listed(value: Any) -> Any:
    # ``hours: "08:30-17:30"`` is the common case; a list holds several ranges.
    return [value] if isinstance(value, str) else value


def _days(value: Any) -> Any:
    if isinstance(value, str) and value not in (WORKDAYS, EVERY_DAY):
        raise ValueError(
            f"days {value!r}: write {WORKDAYS}, {EVERY_DAY} or a list of weekdays "
            f"such as [mon, tue, wed, thu, fri, sat]"
        )
    if isinstance(value, list):
        wrong = [day for day in value if day not in WEEKDAYS]
        if wrong:
            raise ValueError(
                f"{wrong[0]!r} is not a weekday: use {', '.join(WEEKDAYS)}"
            )
        if len(set(value)) != len(value):
            raise ValueError("a weekday is listed twice")
        if not value:
            raise ValueError("must not be empty")
    return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Days = Annotated[
    Literal["workdays", "every_day"] | list[Weekday], BeforeValidator(_days)
]


_RANGE_SCHEMA = {"type": "string", "pattern": TIME_RANGE_PATTERN}
# What an editor should accept: one range, or a list of them.
_HOURS_SCHEMA = WithJsonSchema(
    {
        "anyOf": [
            _RANGE_SCHEMA,
            {"type": "array", "items": _RANGE_SCHEMA, "minItems": 1, "maxItems": 8},
        ]
    }
)


class Overflow(_Model):
    """A caller nobody answered in time: widen the desk, then move the caller.

    Until ``after`` seconds only the desk's level-1 agents are offered the
    call (when ``widen_to_level`` is set); then agents down to that level;
    past ``then_after`` the caller moves to desk ``then`` with ``flag`` on the
    ticket. Time counts from the caller's first moment in a queue.
    """

    after: int = Field(ge=1, le=3600, description="Seconds before widening.")
    widen_to_level: int | None = Field(
        None, ge=2, le=10, description="The least skilled level served after that."
    )
    then: Name | None = Field(None, description="The desk the caller moves to.")
    then_after: int | None = Field(
        None,
        ge=1,
        le=7200,
        description="Seconds before moving (default: after, or twice after "
        "when the desk widens first).",
    )
    flag: str | None = Field(
        None, min_length=1, max_length=200, description="Flag on the moved ticket."
    )

    @model_validator(mode="after")
    def _something_to_do(self) -> Overflow:
        if self.widen_to_level is None and self.then is None:
            raise ValueError("overflow needs widen_to_level, then, or both")
        if self.then is None and (self.then_after or self.flag):
            raise ValueError("then_after and flag need then (the desk to move to)")
        if self.then_after is not None and self.then_after <= self.after:
            raise ValueError(
                f"then_after ({self.then_after}) must be later than after "
                f"({self.after})"
            )
        return self


class Desk(_Model):
    """A skill desk: an Asterisk queue of agents, open 7x24 unless it has hours."""

    name: str = Field(min_length=1, max_length=100, description="Display name.")
    queue: str | None = Field(
        None, pattern=QUEUE_PATTERN, description="Asterisk queue (default: desk id)."
    )
    hours: (
        Annotated[list[TimeRange], BeforeValidator(_listed), _HOURS_SCHEMA] | None
    ) = Field(
        None,
        min_length=1,
        max_length=8,
        description='Opening hours, Beijing time: "08:30-17:30" or a list of '
        "ranges (default all day once days is given).",
    )
    days: Days | None = Field(
        None,
        description="workdays (the official calendar with holidays and make-up "
        "days; the default once hours is given), every_day, or weekdays "
        "[mon, ..., sun] (closed on statutory holidays).",
    )
    when_closed: Action | None = Field(
        None,
        description="What a call for this desk does while it is closed "
        "(default: queue general).",
    )
    overflow: Overflow | None = Field(
        None, description="Widen to less skilled agents, then move the caller."
    )
    callback_after: int | None = Field(
        None,
        ge=5,
        le=3600,
        description="Seconds a caller first queued here waits before being "
        "offered a callback that keeps their place (default: never).",
    )

    @field_validator("hours")
    @classmethod
    def _ranges(cls, hours: list[str] | None) -> list[str] | None:
        spans = sorted((*parse_range(text), text) for text in hours or ())
        for (_, end, first), (start, _, second) in itertools.pairwise(spans):
            if start < end:
                raise ValueError(f"{first} and {second} overlap")
        return hours

    @property
    def always_open(self) -> bool:
        return self.hours is None and self.days is None


def _moment(value: Any) -> Any:
    """An ISO date and time; without a zone it is Beijing time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not a date and time such as 2026-07-31T18:00"
            ) from None
    if isinstance(value, date) and not isinstance(value, datetime):
        raise ValueError(
            f"{value.isoformat()} has no time of day: write "
            f"{value.isoformat()}T00:00 (or the hour the notice ends)"
        )
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=BEIJING)
    return value


class Notice(_Model):
    """A temporary announcement played before the menu until it expires."""

    prompt: Name
    until: Annotated[datetime, BeforeValidator(_moment)] = Field(
        description="When the notice stops playing: ISO date and time, "
        "Beijing time unless a zone is given (2026-07-31T18:00)."
    )


class Enterprises(_Model):
    """Registered enterprise numbers: straight to their desk, ahead of the line."""

    numbers: list[PhoneNumber] = Field(
        min_length=1, max_length=100_000, description="Caller numbers, in quotes."
    )
    desk: Name = Field(description="The desk they reach (usually business).")
    priority: int = Field(1, ge=0, le=10, description="Higher is answered first.")


class ReturningCallers(_Model):
    """Callers with a recent ticket may reach the same desk with one key."""

    days: int = Field(7, ge=1, le=90, description="How recent the ticket must be.")
    prompt: Name = Field(description="The offer: 'for the same desk press 1'.")
    key: DtmfKey = Field("1", description="The key that takes the offer.")
    timeout: Seconds = Field(
        3, description="Seconds to wait before going on to the menu."
    )


class DialPlan(_Model):
    """One hotline's dial plan."""

    name: str = Field(min_length=1, max_length=200)
    version: Literal[1]
    mode: Literal["menu", "direct"] = Field(
        "menu",
        description="menu: callers choose with keys; direct: every caller goes "
        "straight to a person, the desk chosen from what is known about them.",
    )
    languages: list[Language] = Field(
        default_factory=lambda: [DEFAULT_LANGUAGE], min_length=1
    )
    zero_for_person: Name | None = Field(
        None, description="Desk that key 0 reaches from every menu."
    )
    prompts: dict[Name, Prompt] = Field(json_schema_extra=_ONLY_PATTERN)
    desks: dict[Name, Desk] = Field(json_schema_extra=_ONLY_PATTERN)
    targets: dict[Name, Target] = Field(
        default_factory=dict, json_schema_extra=_ONLY_PATTERN
    )
    start: Start
    notice: Notice | None = None
    enterprises: Enterprises | None = None
    returning_callers: ReturningCallers | None = None
    menus: dict[Name, Menu] = Field(
        default_factory=dict, json_schema_extra=_ONLY_PATTERN
    )

    def queue_name(self, desk: str) -> str:
        """The Asterisk queue behind ``desk``."""
        return self.desks[desk].queue or desk

    def desk_of_queue(self, queue: str) -> str:
        """The desk an Asterisk queue serves (the queue's name if none)."""
        for desk in self.desks:
            if self.queue_name(desk) == queue:
                return desk
        return queue


# These name Action before it exists; complete them now, not at first use.
for _model in (PlayAction, Collect, CollectAction, Desk, DialPlan):
    _model.model_rebuild()


def json_schema() -> dict[str, Any]:
    """JSON Schema of a dial plan, for editors (yaml-language-server)."""
    schema = DialPlan.model_json_schema()
    return {
        **schema,
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "yihaotong dial plan",
    }


def required_recordings(plan: DialPlan) -> set[tuple[str, str]]:
    """(language, prompt) pairs that need a .wav: one per text a prompt has."""
    return {
        (language, name)
        for name, prompt in plan.prompts.items()
        for language in prompt.text
    }


def missing_recordings(
    plan: DialPlan, available: Iterable[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Required (language, prompt) pairs absent from ``available``, sorted."""
    return sorted(required_recordings(plan) - set(available))
