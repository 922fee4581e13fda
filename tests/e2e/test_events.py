"""The MQTT event bus against a real Mosquitto: outages, ordering, commands, spool."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable

import pytest

from ivr.events import EventBus
from tests.support.mosquitto import Mosquitto, Subscriber, TcpProxy, publish_once

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(20)]

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polling plain attributes
            await asyncio.sleep(0.01)


async def warm_up(port: int, handled: list, topic: str = "ivr/commands/ping") -> None:
    """Ping until the bus handles one: then its subscription is in place."""
    async with asyncio.timeout(5):
        n = 0
        while not handled:
            n += 1
            await publish_once(port, topic, json.dumps({"id": f"warm-{n}"}))
            await asyncio.sleep(0.05)
    handled.clear()


@pytest.fixture
async def broker():
    async with Mosquitto() as b:
        yield b


@pytest.fixture
async def buses():
    """make(**kw) -> EventBus with a unique client id; all closed at teardown."""
    made: list[EventBus] = []

    def make(**kw) -> EventBus:
        kw.setdefault("client_id", f"yht-{uuid.uuid4().hex[:8]}")
        bus = EventBus(**kw)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.aclose(timeout=0.5)


async def test_event_arrives_as_json_envelope(broker, buses):
    async with Subscriber(broker.port, "ivr/events/#") as sub:
        bus = buses(port=broker.port)
        async with bus:
            event = bus.publish(
                "call.arrived",
                "events/1700000000.1",
                {"caller": "138****0000", "诉求": "噪音扰民"},
            )
            assert await bus.flush(5)
            assert bus.published >= 1 and bus.pending == 0
            (got,) = await sub.wait_for(lambda evs: len(evs) >= 1)
    assert got == {
        "_topic": "ivr/events/1700000000.1",
        "id": event.id,
        "type": "call.arrived",
        "at": event.at,
        "caller": "138****0000",
        "诉求": "噪音扰民",
    }
    assert ISO_MS.match(event.at)
    assert "噪音扰民".encode() in sub.messages[0][1]  # ensure_ascii=False


async def test_case_21_broker_restart_loses_nothing_and_never_blocks(
    broker, buses, tmp_path
):
    topic = "ivr/events/1700000021.7"
    loop = asyncio.get_running_loop()
    worst_tick = 0.0

    async def ticker() -> None:
        nonlocal worst_tick
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            now = loop.time()
            worst_tick = max(worst_tick, now - last - 0.01)
            last = now

    async def bring_back(after: float) -> None:
        await asyncio.sleep(after)
        await broker.start()

    async with Subscriber(broker.port, "ivr/events/#") as sub:
        bus = buses(port=broker.port, spool_path=tmp_path / "spool.jsonl")
        async with bus:
            await until(lambda: bus.connected)
            tick_task = asyncio.create_task(ticker())
            sent: list[str] = []
            while_down: list[float] = []
            back = None
            for n in range(1, 21):
                if n == 8:
                    await broker.stop()
                    back = asyncio.create_task(bring_back(3.0))
                t0 = time.perf_counter()
                event = bus.publish(
                    "call.key", topic[4:], {"n": n, "digit": str(n % 10)}
                )
                elapsed = time.perf_counter() - t0
                if not broker.running:
                    while_down.append(elapsed)
                sent.append(event.id)
                await asyncio.sleep(0.1)
            assert back is not None
            await back
            events = await sub.wait_for(
                lambda evs: {e["id"] for e in evs} >= set(sent), timeout=8
            )
            tick_task.cancel()
            assert await bus.flush(2)

    ordered = [e["n"] for e in events if e["_topic"] == topic]
    assert ordered == list(range(1, 21))
    assert len(while_down) == 13
    # publish() only appends to a buffer; even on a loaded machine it must
    # stay far below anything that waits on the network.
    assert max(while_down) < 0.05, f"publish() took {max(while_down) * 1e3:.3f} ms"
    assert worst_tick < 0.1, f"a 10 ms tick was {worst_tick * 1e3:.0f} ms late"


async def test_broker_crash_resends_what_was_not_acknowledged(broker, buses):
    async with Subscriber(broker.port, "ivr/events/#") as sub:
        bus = buses(port=broker.port)
        async with bus:
            await until(lambda: bus.connected)
            await asyncio.sleep(1.2)  # the broker autosaves the subscriber's session
            await broker.kill()
            sent = [bus.publish("call.ended", "events/K", {"n": n}) for n in range(5)]
            await until(lambda: not bus.connected)
            await broker.start()
            events = await sub.wait_for(lambda evs: len(evs) >= 5, timeout=8)
    assert [e["id"] for e in events] == [e.id for e in sent]


async def test_command_sent_while_bus_away_is_handled_once(broker, buses):
    handled: list[tuple[str, dict]] = []

    async def on_command(topic: str, data: dict) -> None:
        handled.append((topic, data))

    async with TcpProxy(broker.port) as proxy:
        bus = buses(port=proxy.port)
        bus.subscribe("commands/#", on_command)
        async with bus:
            await warm_up(broker.port, handled)

            await proxy.cut()  # our connection only; the broker stays up
            await until(lambda: not bus.connected)
            pause = {"id": "cmd-1", "queue": "12345", "agent": "6001"}
            await publish_once(
                broker.port, "ivr/commands/queue/pause", json.dumps(pause), qos=1
            )
            await asyncio.sleep(0.3)
            assert handled == []

            await proxy.resume()
            await until(lambda: handled)
            # A redelivered copy (same id) is not handled again.
            await publish_once(
                broker.port, "ivr/commands/queue/pause", json.dumps(pause)
            )
            await asyncio.sleep(0.5)
    assert handled == [("commands/queue/pause", pause)]


async def test_reconnect_publishes_outage_and_warns_once(broker, buses, caplog):
    caplog.set_level(logging.INFO, logger="yihaotong.mqtt")
    async with (
        TcpProxy(broker.port) as proxy,
        Subscriber(broker.port, "ivr/system") as sub,
    ):
        bus = buses(port=proxy.port)
        async with bus:
            await until(lambda: bus.connected)
            await proxy.cut()
            await asyncio.sleep(2.0)
            await proxy.resume()
            (event,) = await sub.wait_for(lambda evs: len(evs) >= 1, timeout=8)
    assert event["type"] == "mqtt.reconnected"
    assert 2.0 <= event["outage_seconds"] < 4.5
    # Not one per retry (there were three), nor paho's own ERROR on top.
    warnings = [
        r
        for r in caplog.records
        if r.name.startswith("yihaotong.mqtt") and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "lost MQTT broker" in warnings[0].getMessage()


async def test_buffer_limit_drops_oldest(broker, buses, caplog):
    proxy = TcpProxy(broker.port)  # not listening: the broker looks down
    try:
        async with Subscriber(broker.port, "ivr/events/#") as sub:
            bus = buses(port=proxy.port, buffer_limit=5)
            async with bus:
                await asyncio.sleep(0.1)
                for n in range(1, 9):
                    bus.publish("call.queued", "events/L1", {"n": n})
                assert (bus.dropped, bus.pending) == (3, 5)
                assert "event buffer full" in caplog.text
                await proxy.start()
                events = await sub.wait_for(lambda evs: len(evs) >= 5)
                assert await bus.flush(2)
                assert bus.published == 5 and bus.dropped == 3
        assert [e["n"] for e in events] == [4, 5, 6, 7, 8]
    finally:
        await proxy.cut()


async def test_buffer_full_drops_non_retained_first(buses):
    bus = buses(port=1, buffer_limit=3)  # never run: publish alone
    state = bus.publish("status.queue", "status/queues/12345", {"n": 0}, retain=True)
    for n in range(1, 5):
        bus.publish("call.queued", "events/L1", {"n": n})
    kept = [item.event.data["n"] for item in bus._buffer]
    assert kept == [0, 3, 4] and bus.dropped == 2
    assert bus._buffer[0].event is state


async def test_spool_survives_a_restart_of_the_bus(broker, buses, tmp_path):
    spool = tmp_path / "var" / "events.jsonl"
    client_id = f"yht-{uuid.uuid4().hex[:8]}"
    proxy = TcpProxy(broker.port)
    try:
        async with Subscriber(broker.port, "ivr/events/#") as sub:
            first = buses(port=proxy.port, client_id=client_id, spool_path=spool)
            async with first:
                sent = [
                    first.publish("call.menu", "events/S1", {"n": n})
                    for n in range(1, 6)
                ]
                await first.aclose(timeout=0.2)  # broker unreachable
            assert first.pending == 5
            with spool.open("a") as f:
                f.write('{"e": {"id": "cut-short-by-a-cra')  # a crash mid-line

            second = buses(port=proxy.port, client_id=client_id, spool_path=spool)
            assert second.pending == 5
            sent.append(second.publish("call.ended", "events/S1", {"n": 6}))
            await proxy.start()
            async with second:
                events = await sub.wait_for(lambda evs: len(evs) >= 6)
                assert await second.flush(2)
                await asyncio.sleep(0.05)
        assert [e["id"] for e in events] == [e.id for e in sent]
        assert [e["n"] for e in events] == [1, 2, 3, 4, 5, 6]
        assert spool.stat().st_size == 0  # compacted once all were acked
    finally:
        await proxy.cut()


async def test_bad_messages_and_failing_handlers_do_not_stop_the_bus(
    broker, buses, caplog
):
    handled: list[dict] = []

    async def on_command(topic: str, data: dict) -> None:
        if data.get("boom"):
            raise RuntimeError("handler bug")
        handled.append(data)

    bus = buses(port=broker.port)
    bus.subscribe("commands/#", on_command)
    async with bus:
        await warm_up(broker.port, handled, "ivr/commands/x")
        await publish_once(broker.port, "ivr/commands/x", b"{not json")
        await publish_once(broker.port, "ivr/commands/x", b"[1, 2]")
        await publish_once(broker.port, "ivr/commands/x", b'{"id": "a", "boom": 1}')
        await publish_once(broker.port, "ivr/commands/x", b'{"id": "b"}')
        await until(lambda: handled)
        assert bus.connected
    assert [d["id"] for d in handled] == ["b"]
    assert "not JSON" in caplog.text and "not a JSON object" in caplog.text
    (failure,) = [r for r in caplog.records if r.exc_info and r.levelno >= 40]
    assert "handler" in failure.getMessage()


async def test_resubscribes_when_the_broker_forgot_the_session(buses):
    handled: list[dict] = []

    async def on_command(topic: str, data: dict) -> None:
        handled.append(data)

    async with Mosquitto(persistence=False) as broker:
        bus = buses(port=broker.port)
        bus.subscribe("commands/#", on_command)
        async with bus:
            await warm_up(broker.port, handled)
            await broker.restart(0.2)  # sessions and subscriptions are gone
            await until(lambda: not bus.connected)
            await until(lambda: bus.connected)
            # Only a fresh SUBSCRIBE brings commands back.
            await warm_up(broker.port, handled)


async def test_burst_keeps_order(broker, buses):
    async with Subscriber(broker.port, "ivr/events/#") as sub:
        bus = buses(port=broker.port)
        async with bus:
            for n in range(2000):
                bus.publish("call.key", f"events/B{n % 3}", {"n": n})
            assert await bus.flush(60)
            events = await sub.wait_for(lambda evs: len(evs) >= 2000, timeout=30)
    for k in range(3):
        ns = [e["n"] for e in events if e["_topic"] == f"ivr/events/B{k}"]
        assert ns == list(range(k, 2000, 3))


async def test_aclose_is_bounded_when_the_broker_is_away(buses):
    bus = buses(port=1)  # nothing listens there
    async with bus:
        bus.publish("call.ended", "events/X", {})
        t0 = time.monotonic()
        await bus.aclose(timeout=0.3)
    assert time.monotonic() - t0 < 1.0
    assert not bus.connected and bus.pending == 1
    bus.publish("call.ended", "events/X", {})  # after close: counted, not raised
    assert bus.dropped == 1


def test_publish_rejects_caller_bugs():
    bus = EventBus()
    with pytest.raises(ValueError):
        bus.publish("x", "events/#", {})
    with pytest.raises(ValueError):
        bus.publish("x", "events/1", {"id": "mine"})
    with pytest.raises(TypeError):
        bus.publish("x", "events/1", {"obj": object()})
    with pytest.raises(ValueError):
        bus.subscribe("commands/#/pause", None)  # type: ignore[arg-type]
    assert bus.pending == 0


async def test_spool_stays_bounded_during_a_long_outage(buses, tmp_path):
    spool = tmp_path / "events.jsonl"
    bus = buses(port=1, buffer_limit=10, spool_path=spool)  # never connects
    for n in range(3000):
        bus.publish("call.key", "events/L", {"n": n})
        if n % 100 == 0:
            await asyncio.sleep(0)  # the compaction runs soon after publish()
    await asyncio.sleep(0)
    assert len(spool.read_text().splitlines()) <= 2 * 10 + 1000 + 200
    await bus.aclose()
    again = buses(port=1, buffer_limit=10, spool_path=spool)
    assert [i.event.data["n"] for i in again._buffer] == list(range(2990, 3000))
