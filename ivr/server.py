"""``hotline serve``: the asyncio server around Asterisk.

Start-up order: dial plan (refuse to start on a bad one), ticket store, MQTT
bus, then the AMI session; shutdown runs the other way round, and calls still
in a menu are handed to the general desk first.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from panoramisk.message import Message

from ivr import log
from ivr.ami.agi import AgiRouter
from ivr.ami.session import AmiSession
from ivr.calls import CallTracker
from ivr.config import Config
from ivr.dialplans import load_dialplan_file
from ivr.engine import FALLBACK_DESK, IvrEngine, PromptPaths
from ivr.errors import AgiError, AmiActionError, AmiError
from ivr.events import EventBus
from ivr.tickets import TicketStore
from routing.desks import memberships


class HotlineServer:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.plan = load_dialplan_file(config.dialplan_path)
        self.store: TicketStore | None = None
        self.bus = EventBus(
            host=config.mqtt.host,
            port=config.mqtt.port,
            client_id=config.mqtt.client_id,
            topic_prefix=config.mqtt.topic_prefix,
        )
        self.session = AmiSession(config.ami)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.tracker: CallTracker | None = None
        self.engine: IvrEngine | None = None
        self.agi: AgiRouter | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.store = await TicketStore.open(self.config.store_path)
        self.tracker = CallTracker(
            self.store,
            self.bus,
            inbound_context=self.config.inbound_context,
            hotline_number=self.config.hotline_number,
        )
        self.engine = IvrEngine(
            lambda: self.plan, self.tracker, PromptPaths(self.config.sounds_dir)
        )
        # The tracker sees each event before the IVR does: a call is known
        # (and its ticket under way) before its AsyncAGIStart is handled.
        self.session.on_event(self.tracker.handle)
        self.agi = AgiRouter(self.session, self.engine.start_call)
        self.session.on_connected(self._after_login)
        self.session.on_disconnected(self.agi.fail_all)
        log.ivr.info(
            "serving hotline %s with dial plan %s",
            self.config.hotline_number,
            self.config.dialplan_path,
        )
        try:
            async with asyncio.TaskGroup() as group:
                session = group.create_task(self.session.run(), name="ami")
                tracker = group.create_task(self.tracker.run(), name="tickets")
                bus = group.create_task(self.bus.run(), name="mqtt")
                stop = group.create_task(self._stop.wait(), name="stop")
                done, _ = await asyncio.wait(
                    {session, stop}, return_when=asyncio.FIRST_COMPLETED
                )
                await self._shutdown()
                for task in (session, tracker, bus, stop):
                    task.cancel()
                for task in done:
                    if task is session and task.exception() is not None:
                        raise task.exception()
        except* AmiError as group_error:
            raise group_error.exceptions[0] from None
        finally:
            if self.store is not None:
                await self.store.close()

    async def _shutdown(self) -> None:
        log.ivr.info("shutting down: %d calls in menus", self.engine.active)
        await self.engine.aclose()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.tracker.drain(), 5)
        await self.session.close()
        await self.bus.aclose(timeout=3)

    async def _after_login(self) -> None:
        await self._login_agents()
        await self.tracker.resync(self.session)
        await self._rescue_stranded_agi()
        self.bus.publish(
            "ami.reconnected" if self.session.connections > 1 else "ami.connected",
            "status/ami",
            {"connections": self.session.connections},
        )
        self.ready.set()

    async def _login_agents(self) -> None:
        agents = [
            (a.extension, a.name, a.skills) for a in self.config.agents if a.auto_login
        ]
        for member in memberships(agents, self.plan_desks()):
            try:
                await self.session.action(
                    "QueueAdd",
                    {
                        "Queue": member.queue,
                        "Interface": member.interface,
                        "StateInterface": member.interface,
                        "MemberName": member.member_name,
                        "Penalty": member.penalty,
                        "Paused": "false",
                    },
                )
            except AmiActionError as exc:
                if "already there" not in str(exc).lower():
                    raise
        log.routing.info("agents logged in: %d", len(agents))

    def plan_desks(self) -> list[str]:
        return list(self.plan.desks)

    async def _rescue_stranded_agi(self) -> None:
        """Calls left in AsyncAGI by a previous session go to the general desk."""
        try:
            response = await self.session.action(
                "CoreShowChannels", collect_events=True
            )
        except AmiError as exc:
            log.ivr.warning("cannot look for stranded calls: %s", exc)
            return
        for event in getattr(response, "events", []):
            if event.get("Application") != "AGI":
                continue
            channel = event.get("Channel", "")
            if channel in self.agi.channels:
                continue
            await self._release(channel, event)

    async def _release(self, channel: str, event: Message) -> None:
        log.ivr.warning(
            "call %s was in the menu when the server lost it: sending it to %s",
            event.get("Linkedid", channel),
            FALLBACK_DESK,
        )
        try:
            for command in (
                f'SET VARIABLE YHT_DESK "{FALLBACK_DESK}"',
                "ASYNCAGI BREAK",
            ):
                await self.session.action(
                    "AGI", {"Channel": channel, "Command": command}
                )
        except (AmiError, AgiError) as exc:
            log.ivr.warning("could not release %s: %s", channel, exc)


async def serve(config: Config) -> int:
    server = HotlineServer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    await server.run()
    return 0
