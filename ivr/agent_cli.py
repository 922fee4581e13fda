"""``hotline agent ...`` and ``hotline status``: talk to the running server.

Both go through the MQTT broker the server uses, never to Asterisk directly:

* ``hotline agent login|logout|pause|unpause EXT [--reason R]`` publishes
  ``ivr/commands/agent/<action>`` and waits for the server's answer on a
  reply topic of its own;
* ``hotline status`` reads the retained ``ivr/status/desks/<desk>`` and
  ``ivr/status/agents/<extension>`` and prints them as tables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import uuid

import aiomqtt

from ivr.config import MqttSettings
from ivr.errors import HotlineError

ACTIONS = ("login", "logout", "pause", "unpause")
REPLY_TIMEOUT = 5.0


def add_commands(commands: argparse._SubParsersAction) -> None:
    agent = commands.add_parser(
        "agent", help="log an agent in or out, pause or unpause (running server)"
    )
    agent.add_argument("action", choices=ACTIONS)
    agent.add_argument("extension", help="the agent's extension, e.g. 6001")
    agent.add_argument("--reason", default="", help="why the agent pauses")
    status = commands.add_parser(
        "status", help="live desk statistics and agents (running server)"
    )
    status.add_argument("--json", action="store_true", help="print JSON")


async def agent_command(
    mqtt: MqttSettings, action: str, extension: str, reason: str = ""
) -> dict:
    """Ask the server to do ``action``; its answer (``ok`` false if refused)."""
    request_id = uuid.uuid4().hex
    prefix = mqtt.topic_prefix.rstrip("/")
    reply_topic = f"replies/{request_id}"
    body = {
        "id": request_id,
        "agent": extension,
        "reason": reason,
        "reply_to": reply_topic,
    }
    try:
        async with aiomqtt.Client(
            mqtt.host, mqtt.port, identifier=f"hotline-cli-{request_id[:8]}"
        ) as client:
            await client.subscribe(f"{prefix}/{reply_topic}", qos=1)
            await client.publish(
                f"{prefix}/commands/agent/{action}", json.dumps(body), qos=1
            )
            async with asyncio.timeout(REPLY_TIMEOUT):
                async for message in client.messages:
                    return json.loads(message.payload)
    except TimeoutError:
        raise HotlineError(
            f"no answer from the server within {REPLY_TIMEOUT:.0f} s: is "
            "`hotline serve` running with this broker?"
        ) from None
    except aiomqtt.MqttError as exc:
        raise HotlineError(
            f"cannot reach the MQTT broker at {mqtt.host}:{mqtt.port}: {exc}"
        ) from None
    raise HotlineError("the broker closed the connection before the answer")


async def read_status(mqtt: MqttSettings, settle: float = 0.5) -> dict:
    """The retained desk and agent statuses: {"desks": {...}, "agents": {...}}."""
    prefix = mqtt.topic_prefix.rstrip("/")
    found: dict[str, dict] = {"desks": {}, "agents": {}}
    try:
        async with aiomqtt.Client(
            mqtt.host, mqtt.port, identifier=f"hotline-status-{uuid.uuid4().hex[:8]}"
        ) as client:
            await client.subscribe(f"{prefix}/status/desks/+", qos=1)
            await client.subscribe(f"{prefix}/status/agents/+", qos=1)
            # Retained messages come at once; stop when none came for a while.
            with contextlib.suppress(TimeoutError):
                while True:
                    async with asyncio.timeout(settle):
                        message = await anext(client.messages)
                    kind, name = message.topic.value.split("/")[-2:]
                    if message.payload:
                        found[kind][name] = json.loads(message.payload)
    except aiomqtt.MqttError as exc:
        raise HotlineError(
            f"cannot reach the MQTT broker at {mqtt.host}:{mqtt.port}: {exc}"
        ) from None
    return found


def format_reply(reply: dict) -> str:
    if not reply.get("ok"):
        return f"refused: {reply.get('message', 'no reason given')}"
    text = f"agent {reply['agent']} ({reply.get('name', '')}): {reply['status']}"
    if reply.get("pause_reason"):
        text += f" ({reply['pause_reason']})"
    if not reply.get("changed"):
        text += " (no change)"
    if reply.get("note"):
        text += f"; {reply['note']}"
    return text


def format_status(status: dict) -> str:
    desks = status["desks"]
    if not desks and not status["agents"]:
        return "no status published: is `hotline serve` running with this broker?"
    lines = [
        f"{'desk':<10} {'waiting':>7} {'longest':>8} {'avail':>5} {'busy':>4} "
        f"{'paused':>6} {'wrap':>4} {'15s':>6} {'abandon':>7} {'24h':>6}",
    ]
    for name in sorted(desks):
        d = desks[name]
        agents = d.get("agents", {})
        lines.append(
            f"{name:<10} {d.get('waiting', 0):>7} "
            f"{d.get('longest_wait', 0):>7.0f}s "
            f"{agents.get('available', 0):>5} {agents.get('busy', 0):>4} "
            f"{agents.get('paused', 0):>6} {agents.get('wrap_up', 0):>4} "
            f"{_percent(d.get('answered_15s_rate')):>6} "
            f"{_percent(d.get('abandon_rate')):>7} "
            f"{_percent(d.get('connected_24h_rate')):>6}"
        )
    if status["agents"]:
        lines += ["", f"{'agent':<6} {'name':<12} {'status':<11} desks"]
        for extension in sorted(status["agents"]):
            a = status["agents"][extension]
            state = a.get("status", "?")
            if a.get("pause_reason"):
                state += f" ({a['pause_reason']})"
            lines.append(
                f"{extension:<6} {a.get('name', ''):<12} {state:<11} "
                f"{', '.join(a.get('desks', []))}"
            )
    return "\n".join(lines)


def _percent(value) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def run(args: argparse.Namespace, mqtt: MqttSettings) -> int:
    if args.command == "agent":
        reply = asyncio.run(
            agent_command(mqtt, args.action, args.extension, args.reason)
        )
        print(format_reply(reply))
        return 0 if reply.get("ok") else 1
    status = asyncio.run(read_status(mqtt))
    print(
        json.dumps(status, ensure_ascii=False, indent=1)
        if args.json
        else format_status(status)
    )
    return 0
