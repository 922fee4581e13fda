"""Warm transfers to outside platforms (110, Chongqing 12345, utilities): the
decisions, no I/O.

A transfer target is configuration (:class:`Target`). A running transfer is a
small state machine (:class:`Transfer`): facts seen on the PBX go in
(:meth:`Transfer.on`), and out come the actions the server applies and, once,
the outcome the ticket keeps.

    dialing --answered--> consulting --threeway--> threeway
       |                      |                       |
       +-- busy, no answer, unreachable, cancelled, caller gone, completed --+

Outcomes: ``completed`` (the caller talks to the target, the agent left),
``threeway``, ``cancelled`` (the agent or the API aborted), ``busy``,
``no_answer``, ``unreachable``, ``target_hung_up``, ``abandoned`` (the caller
hung up during the consultation), ``failed`` (the PBX refused to start it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The keys features.conf offers for the one-key transfer ([applicationmap]
# yht-key-*); a target's key must be one of them.
FEATURE_KEYS = ("*0", "*7", "*8", "*9")

# Dial()'s DIALSTATUS of a consultation that never answered -> outcome.
DIALSTATUS_OUTCOMES = {
    "BUSY": "busy",
    "NOANSWER": "no_answer",
    "CHANUNAVAIL": "unreachable",
    "CONGESTION": "unreachable",
    "NOTARGET": "unreachable",
    "CANCEL": "cancelled",
}

OUTCOMES = (
    "completed",
    "threeway",
    "cancelled",
    "busy",
    "no_answer",
    "unreachable",
    "target_hung_up",
    "abandoned",
    "failed",
)

# Ticket fields a target may be sent in a hand-off record.
HANDOFF_FIELDS = ("category", "address", "area", "content", "caller_name")

_NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TOPIC = re.compile(r"[A-Za-z0-9_/-]{1,200}")
_DIAL = re.compile(r"(PJSIP|Local)/[A-Za-z0-9@._/-]{1,120}")
# A desk's queue name, as yht-transfer-desk's pattern _[a-z]. matches it.
_DESK = re.compile(r"[a-z][a-z0-9_-]{1,31}")
# Where a desk target's consultation waits in the desk's queue.
DESK_CONTEXT = "yht-transfer-desk"
# A target's string-valued keys (TOML gives str; anything else is a typo).
_TEXT_KEYS = (
    "label",
    "dial",
    "key",
    "handoff_topic",
    "webhook_secret_env",
    "webhook_secret_file",
    "desk",
)


def _typed(where: str, key: str, value, kind: type, words: str) -> None:
    """ValueError naming the target and key unless ``value`` is a ``kind``."""
    # bool is an int to isinstance; a quoted "false" is a truthy str: both
    # would pass silently (and the latter unmasks caller numbers).
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(
            f"{where}: {key} must be {words}, not {type(value).__name__} {value!r}"
        )


@dataclass(frozen=True)
class Target:
    """One outside platform the agent may transfer a caller to."""

    name: str
    label: str
    # The Dial() string of the target, e.g. PJSIP/110@trunk-110.
    dial: str = ""
    dial_timeout: int = 20
    key: str = ""
    # MQTT topic (below the prefix) for hand-off records; updates come back on
    # <topic>/updates.
    handoff_topic: str = ""
    # Where the webhook secret is: an environment variable or a file.
    webhook_secret_env: str = ""
    webhook_secret_file: str = ""
    show_caller_number: bool = False
    fields: tuple[str, ...] = ("category", "address", "content")
    # Case 16: another desk of the hotline instead of an outside platform.
    # The consultation waits in that desk's queue (yht-transfer-desk in
    # extensions.conf), ahead of its callers; ``dial`` is derived.
    desk: str = ""

    def __post_init__(self) -> None:
        where = f"[[transfer.targets]] {self.name!r}"
        _typed(where, "name", self.name, str, "a string")
        for key in _TEXT_KEYS:
            _typed(where, key, getattr(self, key), str, "a string")
        _typed(where, "dial_timeout", self.dial_timeout, int, "a whole number")
        _typed(where, "show_caller_number", self.show_caller_number, bool, "true/false")
        fields = self.fields
        if isinstance(fields, list):  # from TOML; a tuple keeps Target hashable
            fields = tuple(fields)
            object.__setattr__(self, "fields", fields)
        if not isinstance(fields, tuple) or not all(isinstance(f, str) for f in fields):
            raise ValueError(
                f"{where}: fields must be a list of field names "
                f"({', '.join(HANDOFF_FIELDS)}), not {self.fields!r}"
            )
        if not _NAME.fullmatch(self.name):
            raise ValueError(
                f"{where}: name must be lower-case letters, digits, - or _"
            )
        if self.desk:
            if self.dial:
                raise ValueError(f"{where}: give dial or desk, not both")
            if not _DESK.fullmatch(self.desk):
                raise ValueError(
                    f"{where}: desk {self.desk!r} must be a desk's name "
                    "(lower-case letters, digits, - or _)"
                )
            # /n: no Local optimisation, so the desk agent's Queue() (and its
            # AgentComplete, which starts their wrap-up) lasts their whole call.
            dial = f"Local/{self.desk}@{DESK_CONTEXT}/n"
            object.__setattr__(self, "dial", dial)
        elif not self.dial:
            raise ValueError(f"{where}: needs dial (an outside platform) or desk")
        if not _DIAL.fullmatch(self.dial):
            raise ValueError(
                f"{where}: dial {self.dial!r} is not a PJSIP/... or Local/... string"
            )
        if not 3 <= self.dial_timeout <= 120:
            raise ValueError(f"{where}: dial_timeout must be 3 to 120 seconds")
        if self.key and self.key not in FEATURE_KEYS:
            raise ValueError(
                f"{where}: key {self.key!r} is not one features.conf offers "
                f"({', '.join(FEATURE_KEYS)})"
            )
        if self.handoff_topic and not _TOPIC.fullmatch(self.handoff_topic):
            raise ValueError(f"{where}: handoff_topic {self.handoff_topic!r}")
        unknown = set(self.fields) - set(HANDOFF_FIELDS)
        if unknown:
            raise ValueError(
                f"{where}: fields {sorted(unknown)} cannot be sent; "
                f"known: {', '.join(HANDOFF_FIELDS)}"
            )


def check_targets(targets: list[Target]) -> None:
    """Names and keys are unique across targets; ValueError otherwise."""
    for attr in ("name", "key"):
        seen: set[str] = set()
        for target in targets:
            value = getattr(target, attr)
            if value and value in seen:
                raise ValueError(
                    f"[[transfer.targets]] two targets with {attr} {value!r}"
                )
            seen.add(value)


# -- the state machine --------------------------------------------------------

# Facts the server feeds in.
STARTED = "started"  # Atxfer accepted; the consultation leg is being dialled
ANSWERED = "answered"  # the target answered the consultation
DIAL_FAILED = "dial_failed"  # Dial() ended without an answer (detail: DIALSTATUS)
CONSULT_ENDED = "consult_ended"  # the consultation leg hung up
CANCEL = "cancel"  # the agent or the API aborted
COMPLETED = "completed"  # AttendedTransfer: the caller is with the target
THREEWAY = "threeway"  # AttendedTransfer into a three-way bridge
CALLER_GONE = "caller_gone"  # the caller hung up
AGENT_GONE = "agent_gone"  # the agent hung up
REFUSED = "refused"  # the PBX refused Atxfer

# Actions the server applies.
HANGUP_CONSULT = "hangup_consult"  # the Local ;1 leg and the target's channel
HANGUP_AGENT = "hangup_agent"
CANCEL_ATXFER = "cancel_atxfer"


@dataclass
class Transfer:
    """One warm transfer of one call. Times are the caller's clock (seconds)."""

    id: str
    target: str
    started_at: float
    state: str = "dialing"
    answered_at: float | None = None
    ended_at: float | None = None
    outcome: str = ""
    reason: str = ""
    # The agent had left and the target never answered: yht-transfer sent the
    # caller back to the desk's queue, at the front.
    requeued: bool = False
    # Only one outcome, however many events report the end (case 18).
    history: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state in ("dialing", "consulting", "handed_over")

    def on(self, fact: str, at: float, detail: str = "") -> list[str]:
        """Feed one fact; returns the actions to apply (maybe none)."""
        self.history.append(fact)
        if not self.active and self.state != "threeway":
            # Settled already. A consultation that answers after a cancel or
            # after the caller left is hung up at once (case 18, 3b).
            late = fact == ANSWERED and self.outcome != "completed"
            return [HANGUP_CONSULT] if late else []

        if fact == ANSWERED:
            if self.state == "dialing":
                self.answered_at = at
                self.state = "consulting"
            elif self.state == "handed_over":
                # The agent had left: the target answers straight to the caller.
                self.answered_at = at
                self._end("completed", at, "target answered after the agent left")
            return []
        if fact == DIAL_FAILED:
            outcome = DIALSTATUS_OUTCOMES.get(detail, "unreachable")
            if self.state == "handed_over":
                self._requeue(outcome, at, detail)
                return []
            self._end(outcome, at, detail)
            return []
        if fact == CONSULT_ENDED:
            if self.state == "threeway":
                return []
            if self.state == "handed_over":
                self._requeue("unreachable", at, detail or "the consultation leg ended")
                return []
            outcome = "target_hung_up" if self.state == "consulting" else "unreachable"
            self._end(outcome, at, detail or "the consultation leg ended")
            return []
        if fact == CANCEL:
            if self.state == "threeway":
                return []
            self._end("cancelled", at, detail or "cancelled by the agent")
            return [CANCEL_ATXFER, HANGUP_CONSULT]
        if fact == COMPLETED:
            if self.state in ("dialing", "handed_over"):
                # A hand-over while the target rings: done when it answers.
                self.state = "handed_over"
                return []
            self._end("completed", at, detail)
            return []
        if fact == THREEWAY:
            self.state = "threeway"
            self.outcome = "threeway"
            self.answered_at = self.answered_at or at
            return []
        if fact == CALLER_GONE:
            if self.state == "threeway":
                return []
            self._end("abandoned", at, "transfer abandoned by caller")
            return [HANGUP_CONSULT, HANGUP_AGENT]
        if fact == AGENT_GONE:
            if self.state == "consulting":
                # Asterisk completes the transfer (AttendedTransfer follows).
                return []
            if self.state == "dialing":
                # Asterisk hands the caller over: connected when it answers.
                self.state = "handed_over"
            return []
        if fact == REFUSED:
            self._end("failed", at, detail)
            return []
        raise ValueError(f"unknown transfer fact {fact!r}")

    def _requeue(self, outcome: str, at: float, detail: str) -> None:
        self.requeued = True
        self._end(outcome, at, f"{detail}; agent gone, caller back to the queue")

    def _end(self, outcome: str, at: float, reason: str) -> None:
        self.state = "ended"
        self.outcome = outcome
        self.reason = reason
        self.ended_at = at

    def segment(self) -> dict:
        """What the ticket keeps of this transfer (times relative to start)."""
        ring = (self.answered_at or self.ended_at or self.started_at) - self.started_at
        consult = None
        if self.answered_at is not None:
            consult = round((self.ended_at or self.answered_at) - self.answered_at, 3)
        return {
            "id": self.id,
            "target": self.target,
            "outcome": self.outcome,
            "reason": self.reason,
            "ring_seconds": round(ring, 3),
            "consult_seconds": consult,
            "requeued": self.requeued,
        }


# -- after an AMI reconnect ------------------------------------------------------

AWAY = "ended while the AMI link was down"
# What the server does beyond feeding facts: the caller is alone in a bridge
# (nobody left to talk to): back to the desk's queue at the front.
REQUEUE_CALLER = "requeue_caller"


@dataclass(frozen=True)
class Seen:
    """What ``CoreShowChannels`` shows of one followed transfer after a
    reconnect."""

    caller_up: bool
    agent_up: bool
    consult_up: bool  # the Local legs or the target's channel
    target_answered: bool  # the target's channel is up (answered)
    caller_with_target: bool  # in one bridge with the target or its Local leg
    caller_alone: bool  # in a bridge with nobody else, or in none and not queued


def after_reconnect(state: str, seen: Seen) -> tuple[list[tuple[str, str]], list[str]]:
    """Events missed while the AMI link was down: the facts to feed (with
    their detail), in order, and the extra actions, from what is left up.

    Whatever is still going on carries on; a consultation that ended, or a
    caller that left, is settled as if the events had been seen, with a reason
    that says so. A caller never stays alone: back to the queue.
    """
    if state == "ended":
        return [], []
    if not seen.caller_up:
        # Hangs up what is left of the consultation and the agent (case 18).
        return [(CALLER_GONE, "")], []
    if state == "threeway":
        return [], []
    with_target = "agent left; caller with target"
    if state == "consulting" and not seen.agent_up:
        if seen.caller_with_target or seen.consult_up:
            # The agent left a consultation: Asterisk completed the transfer.
            return [(COMPLETED, with_target)], []
        # Nobody is left with the caller.
        return [(CONSULT_ENDED, AWAY)], [REQUEUE_CALLER] if seen.caller_alone else []
    if state == "consulting":
        if seen.consult_up:
            return [], []  # carry on
        return [(CONSULT_ENDED, AWAY)], []  # the agent is back with the caller
    # dialing or handed_over: the target had not answered when we last saw it.
    facts: list[tuple[str, str]] = []
    if state == "dialing" and not seen.agent_up:
        facts.append((AGENT_GONE, ""))
        state = "handed_over"
    if seen.target_answered or (state == "handed_over" and seen.caller_with_target):
        # In hand-over that completes it; with the agent, the consultation.
        return [*facts, (ANSWERED, "")], []
    if seen.consult_up:
        return facts, []  # still ringing: carry on
    facts.append((CONSULT_ENDED, AWAY))
    if state == "handed_over" and seen.caller_alone:
        return facts, [REQUEUE_CALLER]
    return facts, []


def event_type(outcome: str) -> str:
    """The MQTT event type of a transfer's outcome."""
    return f"transfer.{outcome}"


_TARGET_KEYS = {f for f in Target.__dataclass_fields__}


def parse_targets(raw: dict) -> tuple[Target, ...]:
    """The ``[transfer]`` section; ValueError naming the section if wrong."""
    if not isinstance(raw, dict):
        raise ValueError("[transfer] must be a table")
    unknown = set(raw) - {"targets"}
    if unknown:
        raise ValueError(
            f"[transfer] unknown key {', '.join(sorted(unknown))}; known: targets"
        )
    targets = []
    for index, entry in enumerate(raw.get("targets", []), start=1):
        if not isinstance(entry, dict):
            raise ValueError(f"[[transfer.targets]] entry {index} must be a table")
        unknown = set(entry) - _TARGET_KEYS
        if unknown:
            raise ValueError(
                f"[[transfer.targets]] entry {index}: unknown key "
                f"{', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(_TARGET_KEYS))}"
            )
        if "name" not in entry or not ("dial" in entry or "desk" in entry):
            raise ValueError(
                f"[[transfer.targets]] entry {index} needs name and dial (or desk)"
            )
        if not isinstance(entry["name"], str):
            raise ValueError(
                f"[[transfer.targets]] entry {index}: name must be a string, "
                f"not {type(entry['name']).__name__} {entry['name']!r}"
            )
        values = dict(entry)
        values.setdefault("label", values["name"])
        # Target checks every value's type (fields: a list, made a tuple).
        targets.append(Target(**values))
    check_targets(targets)
    return tuple(targets)
