"""``hotline demo``: real SIP calls through a real Asterisk, end to end.

Twelve citizens call 12345 from softphones, press keys (RFC 4733 DTMF) or do
not, and meet agents on softphones who answer, talk and hang up. Every menu
key is used, as are no input, an invalid key, a hang-up in the menu and a
hang-up while queued. The demo follows the calls over MQTT as any consumer
would, then checks that every call left exactly one complete ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiomqtt

from ivr import log
from ivr.lab import Lab
from ivr.tickets import parse_iso


@dataclass(frozen=True)
class Scenario:
    number: str
    what: str
    # Each action: a key to press, "-" to stay silent for one menu round,
    # "hangup" to hang up in the menu, "hangup-queued" to hang up once queued.
    actions: tuple[str, ...]
    desk: str
    outcome: str
    name: str = ""
    # The key the caller presses in the survey after the agent hangs up.
    survey: str = ""


ANSWERED = "answered"
SCENARIOS = [
    Scenario("13800000001", "key 1: business desk", ("1",), "business", ANSWERED),
    Scenario("13800000002", "key 2: psychological aid", ("2",), "psych", ANSWERED),
    Scenario("13800000003", "key 3: Tibetan desk", ("3",), "tibetan", ANSWERED),
    Scenario("13800000004", "key 4: Yi desk", ("4",), "yi", ANSWERED),
    Scenario("13800000005", "key 0: a person", ("0",), "general", ANSWERED),
    Scenario("13800000006", "9 repeats, then 1", ("9", "1"), "business", ANSWERED),
    Scenario("13800000007", "no input twice", ("-", "-"), "general", ANSWERED),
    Scenario("13800000008", "invalid key twice", ("7", "7"), "general", ANSWERED),
    Scenario("13800000009", "invalid key, then 3", ("8", "3"), "tibetan", ANSWERED),
    Scenario("13800000010", "hangs up in the menu", ("hangup",), "",
             "abandoned_in_menu"),
    Scenario("13800000012", "key 0, a Chinese caller name", ("0",), "general",
             ANSWERED, name="王先生"),
    # Last, alone: the Yi desk's agent is paused, so this caller gives up waiting.
    Scenario("13800000011", "hangs up while queued", ("4", "hangup-queued"), "yi",
             "abandoned_in_queue"),
]  # fmt: skip


@dataclass
class Placed:
    scenario: Scenario
    started: float
    done: bool = False
    error: str = ""
    events: list[str] = field(default_factory=list)


async def run_demo(calls: int = 12, keep: bool = False) -> int:
    scenarios = SCENARIOS[: max(1, min(calls, len(SCENARIOS)))]
    began = datetime.now(UTC)
    if logging.getLogger().level > logging.DEBUG:
        # The progress lines tell the story; the server's INFO lines are noise here.
        logging.getLogger("yihaotong").setLevel(logging.WARNING)
    print("demo: starting Asterisk, Mosquitto, the server and the agents' softphones")
    lab = Lab("demo")
    try:
        await lab.start()
    except BaseException:
        await lab.stop()
        raise
    try:
        report, status = await _run(lab, scenarios, began)
    finally:
        if not keep:
            await lab.stop()
    print(report)
    return status


async def _run(lab: Lab, scenarios: list[Scenario], began: datetime) -> tuple[str, int]:
    placed: dict[str, Placed] = {}
    watcher = asyncio.create_task(_watch(lab, placed))
    try:
        together = [s for s in scenarios if "hangup-queued" not in s.actions]
        alone = [s for s in scenarios if "hangup-queued" in s.actions]
        print(f"demo: placing {len(scenarios)} calls to 12345")
        await asyncio.gather(
            *(_place(lab, s, placed, delay=i * 0.7) for i, s in enumerate(together))
        )
        for scenario in alone:
            await _with_desk_paused(lab, scenario.desk, _place(lab, scenario, placed))
        await asyncio.wait_for(lab.server.tracker.drain(), 15)
        await _wait_closed(lab, scenarios, began)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return await _report(lab, scenarios, placed, began)


async def _place(
    lab: Lab, scenario: Scenario, placed: dict, delay: float = 0.0
) -> None:
    await asyncio.sleep(delay)
    record = placed[scenario.number] = Placed(scenario, time.monotonic())
    try:
        await lab.run_caller(
            scenario.number,
            scenario.actions,
            name=scenario.name,
            survey=scenario.survey or _survey_key(scenario),
        )
    except Exception as exc:
        record.error = str(exc)
        print(f"  call from {log.mask_number(scenario.number)} failed: {exc}")
    record.done = True


async def _with_desk_paused(lab: Lab, desk: str, work) -> None:
    """Pause the desk's members (a tea break) so a caller has to wait."""
    members = [a for a in lab.config.agents if desk in a.skills]
    for agent in members:
        await lab.server.session.action(
            "QueuePause",
            {
                "Interface": f"PJSIP/{agent.extension}",
                "Queue": desk,
                "Paused": "true",
                "Reason": "demo: break",
            },
        )
    try:
        await work
    finally:
        for agent in members:
            await lab.server.session.action(
                "QueuePause",
                {
                    "Interface": f"PJSIP/{agent.extension}",
                    "Queue": desk,
                    "Paused": "false",
                },
            )


async def _watch(lab: Lab, placed: dict[str, Placed]) -> None:
    """Show progress from the MQTT events, as any consumer would see them."""
    prefix = lab.config.mqtt.topic_prefix
    while True:
        try:
            await _follow(lab, prefix)
        except aiomqtt.MqttError as exc:
            print(f"  (progress over MQTT interrupted: {exc}; retrying)")
            await asyncio.sleep(1)


async def _follow(lab: Lab, prefix: str) -> None:
    async with aiomqtt.Client(
        "127.0.0.1", lab.ports.mqtt, identifier="yihaotong-demo-watch"
    ) as client:
        await client.subscribe(f"{prefix}/events/#", qos=1)
        async for message in client.messages:
            try:
                event = json.loads(message.payload)
            except ValueError:
                continue
            line = _progress(event)
            if line:
                print(f"  {line}")


def _progress(event: dict) -> str:
    kind = event.get("type", "")
    ticket = event.get("ticket") or event.get("linkedid", "")
    if kind == "call.arrived":
        return f"{ticket}  call from {log.mask_number(event.get('caller'))}"
    if kind == "call.key":
        return f"{ticket}  key {event.get('key')}"
    if kind == "call.routed":
        return f"{ticket}  to desk {event.get('desk')} ({event.get('reason')})"
    if kind == "call.answered":
        agent, wait = event.get("agent"), event.get("hold_time")
        return f"{ticket}  answered by agent {agent} after {wait} s"
    if kind == "call.ended":
        return f"{ticket}  ended: {event.get('outcome')}"
    return ""


async def _wait_closed(lab: Lab, scenarios: list[Scenario], began: datetime) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        tickets = await _tickets(lab, began)
        numbers = {s.number for s in scenarios}
        if all(
            any(t["caller_number"] == n and t["status"] == "closed" for t in tickets)
            for n in numbers
        ):
            return
        await asyncio.sleep(0.5)


async def _tickets(lab: Lab, began: datetime) -> list[dict]:
    tickets = await lab.server.store.find()
    return [t for t in tickets if parse_iso(t["arrived_at"]) >= began]


def _complete(ticket: dict) -> bool:
    if ticket["status"] != "closed" or not ticket["outcome"] or not ticket["ended_at"]:
        return False
    if ticket["outcome"] == "answered":
        return bool(ticket["agent"]) and ticket["talk_time"] is not None
    return True


async def _report(
    lab: Lab, scenarios: list[Scenario], placed: dict[str, Placed], began: datetime
) -> tuple[str, int]:
    """The ticket table and the closing line; non-zero status on any lost call."""
    tickets = await _tickets(lab, began)
    by_number: dict[str, list[dict]] = {}
    for ticket in tickets:
        by_number.setdefault(ticket["caller_number"], []).append(ticket)

    header = (
        f"{'ticket':<22} {'caller':<12} {'keys':<6} {'desk':<9} {'agent':<6} "
        f"{'wait':>5} {'talk':>5}  outcome"
    )
    lines = ["", header, "-" * len(header)]
    lost = answered = mismatched = 0
    for scenario in scenarios:
        found = by_number.get(scenario.number, [])
        if len(found) != 1 or not _complete(found[0]):
            lost += 1
            lines.append(
                f"{'(no complete ticket)':<22} {log.mask_number(scenario.number):<12} "
                f"{scenario.what}: {len(found)} tickets"
            )
            continue
        t = found[0]
        keys = "".join(k["key"] for k in t["keys"] if "during" not in k) or "-"
        expected = t["outcome"] == scenario.outcome and (
            not scenario.desk or t["desk"] == scenario.desk
        )
        mismatched += not expected
        answered += t["outcome"] == "answered"
        lines.append(
            f"{t['number']:<22} {log.mask_number(t['caller_number']):<12} {keys:<6} "
            f"{t['desk'] or '-':<9} {t['agent'] or '-':<6} {_fmt(t['queue_wait'])} "
            f"{_fmt(t['talk_time'])}  {t['outcome']}"
            + ("" if expected else f"  (expected {scenario.outcome})")
        )
    lines.append("")
    lines.append(_survey_line(tickets))
    if mismatched:
        lines.append(f"demo: {mismatched} calls did not end as their scenario expects")
    lines.append(
        f"demo: {len(scenarios)} calls placed, {len(tickets)} tickets written, "
        f"{answered} answered by agents, {lost} lost"
    )
    status = 1 if lost or mismatched or len(tickets) != len(scenarios) else 0
    return "\n".join(lines), status


def _survey_key(scenario: Scenario) -> str:
    """Answered callers rate the call: mostly 1, some 2, one 3."""
    if scenario.outcome != ANSWERED:
        return ""
    return {"13800000007": "2", "13800000008": "3", "13800000009": "2"}.get(
        scenario.number, "1"
    )


def _survey_line(tickets: list[dict]) -> str:
    scores = [t.get("satisfaction") for t in tickets if t.get("satisfaction")]
    counts = {score: scores.count(score) for score in (1, 2, 3)}
    return (
        f"demo: {len(scores)} callers rated their call after the agent hung up: "
        f"{counts[1]} satisfied, {counts[2]} basically satisfied, "
        f"{counts[3]} not satisfied"
    )


def _fmt(value) -> str:
    return f"{value:5.1f}" if isinstance(value, int | float) else f"{'-':>5}"
