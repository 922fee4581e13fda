"""The shape of a dial plan: pydantic models for what a hotline's YAML may say.

A dial plan names the prompts, the skill desks (Asterisk queues), the menus and
what each key does. An action is a mapping with exactly one action word, and
the word present picks the model (``menu``, ``queue``, ``hangup``, ``play``,
``transfer``, ``collect``): a new action is one more model in ``_ACTIONS`` and
one more member of ``Action``.

These models check each value on its own; references between sections
(a key naming a desk) are checked in :mod:`routing.dialplan_check`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

DEFAULT_LANGUAGE = "zh"
GENERAL = "general"  # the desk of last resort; every plan must have it

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
LANGUAGE_PATTERN = r"^[a-z]{2,3}$"
DTMF_PATTERN = r"^[0-9*#]$"

# Names become file names (<lang>/<name>.wav), hence the strict pattern.
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Language = Annotated[str, Field(pattern=LANGUAGE_PATTERN)]
DtmfKey = Annotated[str, Field(pattern=DTMF_PATTERN)]
Seconds = Annotated[int, Field(ge=1, le=30)]


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


class Desk(_Model):
    """A skill desk: an Asterisk queue of agents."""

    name: str = Field(min_length=1, max_length=100, description="Display name.")
    queue: str | None = Field(
        None, pattern=QUEUE_PATTERN, description="Asterisk queue (default: desk id)."
    )


class Target(_Model):
    """A number calls may be transferred to (another hotline, 110, 120)."""

    name: str = Field(min_length=1, max_length=100)
    number: str = Field(pattern=r"^\+?[0-9]{3,20}$")


class Start(_Model):
    """What a call meets first."""

    greeting: Name | None = None
    menu: Name


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


class DialPlan(_Model):
    """One hotline's dial plan."""

    name: str = Field(min_length=1, max_length=200)
    version: Literal[1]
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
    menus: dict[Name, Menu] = Field(min_length=1, json_schema_extra=_ONLY_PATTERN)

    def queue_name(self, desk: str) -> str:
        """The Asterisk queue behind ``desk``."""
        return self.desks[desk].queue or desk


# These name Action before it exists; complete them now, not at first use.
for _model in (PlayAction, Collect, CollectAction):
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
