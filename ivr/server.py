"""``hotline serve``: the asyncio server around Asterisk.

Start-up order: dial plan (refuse to start on a bad one), ticket store, MQTT
bus, then the AMI session; shutdown runs the other way round, and calls still
in a menu are handed to the general desk first.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path

from panoramisk.message import Message

from ivr import log
from ivr.agents import AgentDesk
from ivr.ami.agi import AgiRouter
from ivr.ami.session import AmiSession, live_channels
from ivr.callbacks import Callbacks
from ivr.calls import CallTracker
from ivr.config import Config
from ivr.desk_status import DeskBoard
from ivr.dialplan_live import LivePlan, PlanFileWatcher
from ivr.dialplan_store import DialplanStore, PlanVersion
from ivr.dialplans import load_dialplan_file
from ivr.engine import FALLBACK_DESK, IvrEngine, PromptPaths
from ivr.errors import AgiError, AmiConnectionLost, AmiError, TicketStoreError
from ivr.events import EventBus
from ivr.journal import JournaledStore
from ivr.sip_guard import SipBlocker, SipGuard
from ivr.tickets import TicketStore, parse_iso
from ivr.waiting import WaitingRoom
from ivr.watchdog import WATCHDOG_CONTEXT, MenuWatchdog
from ivr.web.settings import load_admin_settings
from routing.agents import AgentBook
from routing.callers import CallerFacts, facts_for
from routing.hours import BEIJING


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
            # Issue 8: events kept while the broker is away survive a restart.
            spool_path=Path(config.mqtt.spool) if config.mqtt.spool else None,
        )
        self.session = AmiSession(config.ami)
        self.ready = asyncio.Event()
        self._stop = asyncio.Event()
        self.tracker: CallTracker | None = None
        self.engine: IvrEngine | None = None
        self.agi: AgiRouter | None = None
        self.workorders = None  # the work-order rules, when the API serves tickets
        # Issue 4: agents, waiting callers, callbacks (made in run()).
        self.agents: AgentDesk | None = None
        self.waiting: WaitingRoom | None = None
        self.callbacks: Callbacks | None = None
        self.desks: DeskBoard | None = None
        self.transfers = None  # issue 5: an ivr.transfer.TransferDesk (run())
        self.handoff = None  # and its ivr.handoff.Handoff
        self.callback_dial = config.routing.callback_dial.format
        # Issue 3: every publish goes through self.plans, which sets self.plan.
        self.admin_settings = load_admin_settings(config)
        self.plans = LivePlan(
            DialplanStore(self.admin_settings.versions_dir),
            self.plan,
            on_change=self._plan_changed,
        )
        self._admin_tasks: set[asyncio.Task] = set()
        self.admin_api = None  # an ivr.web.app.AdminServer while it runs

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self.store = await TicketStore.open(
            self.config.store_path, busy_timeout=self.config.store_busy_timeout
        )
        # Issue 8: while the store fails, call writes wait in a journal.
        self.store = await JournaledStore.open(self.store, events=self.bus)
        self.tracker = CallTracker(
            self.store,
            self.bus,
            inbound_context=self.config.inbound_context,
            hotline_number=self.config.hotline_number,
        )
        self.store.opened_late = self.tracker.ticket_opened_late
        self.tracker.set_channel_variable = self._set_channel_variable
        self.engine = IvrEngine(
            lambda: self.plan,
            self.tracker,
            PromptPaths(self.config.sounds_dir),
            caller_facts=self.caller_facts,
        )
        # The tracker sees each event before the IVR does: a call is known
        # (and its ticket under way) before its AsyncAGIStart is handled.
        self.session.on_event(self.tracker.handle)
        self.agi = AgiRouter(self.session, self.engine.start_call)
        # Issue 8: the dialplan's menu watchdog, pushed back while we drive.
        self.watchdog = MenuWatchdog(self.session, self._menu_channels)
        self.engine.before_release = self.watchdog.release
        # Issue 8: repeated SIP authentication failures, reported (and the
        # address denied when Asterisk includes our blocklist).
        blocklist = self.config.sip_blocklist
        self.sip_guard = SipGuard(
            self.bus,
            blocker=SipBlocker(
                self.session, blocklist, never_block=self.config.sip_never_block
            )
            if blocklist
            else None,
        )
        self.session.on_event(self.sip_guard.handle)
        self.session.on_connected(self._after_login)
        self.session.on_disconnected(self.agi.fail_all)
        self._start_queueing()  # issue 4
        self._start_transfers()  # issue 5
        log.ivr.info(
            "serving hotline %s with dial plan %s",
            self.config.hotline_number,
            self.config.dialplan_path,
        )
        try:
            await self._start_admin()  # issue 3: versions, file watcher, admin API
            async with asyncio.TaskGroup() as group:
                session = group.create_task(self.session.run(), name="ami")
                tracker = group.create_task(self.tracker.run(), name="tickets")
                bus = group.create_task(self.bus.run(), name="mqtt")
                stop = group.create_task(self._stop.wait(), name="stop")
                watchdog = group.create_task(self.watchdog.run(), name="watchdog")
                guard = group.create_task(self.sip_guard.run(), name="sip-guard")
                queueing = [  # issue 4
                    group.create_task(coro, name=name)
                    for name, coro in self._queueing_tasks().items()
                ]
                done, _ = await asyncio.wait(
                    {session, stop}, return_when=asyncio.FIRST_COMPLETED
                )
                await self._shutdown()
                for task in (session, tracker, bus, stop, watchdog, guard, *queueing):
                    task.cancel()
                for task in done:
                    if task is session and task.exception() is not None:
                        raise task.exception()
        except* AmiError as group_error:
            raise group_error.exceptions[0] from None
        finally:
            await self._stop_admin()  # issue 3
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
        # Callers left in silence come first; each later step may fail alone
        # without keeping the others from running.
        steps = (
            ("rescue of callers stranded in the menu", self._rescue_stranded_agi),
            # The first session adopts Asterisk's members (a server restart);
            # later ones re-apply ours (Asterisk restarted).
            (
                "agent resync",
                lambda: self.agents.resync(adopt=self.session.connections == 1),
            ),
            # Issue 5: before the tickets are closed, so a transfer segment
            # settled here comes before the call's end.
            ("transfer resync", self._resync_transfers),
            ("call and ticket resync", lambda: self.tracker.resync(self.session)),
            ("waiting callers resync", self._resync_waiting),
        )
        for what, step in steps:
            try:
                await step()
            except AmiConnectionLost:
                raise
            except Exception:
                log.ivr.exception("after login: %s failed; carrying on", what)
        self.bus.publish(
            "ami.reconnected" if self.session.connections > 1 else "ami.connected",
            "status/ami",
            {"connections": self.session.connections},
        )
        self.ready.set()

    def _menu_channels(self) -> list[str]:
        return [n for n, c in self.agi.channels.items() if not c.ended.is_set()]

    async def _rescue_stranded_agi(self) -> None:
        """Calls left in AsyncAGI by a previous session go to the general desk."""
        try:
            channels = await live_channels(self.session)
        except AmiError as exc:
            log.ivr.warning("cannot look for stranded calls: %s", exc)
            return
        for event in channels:
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
            if event.get("Context") == WATCHDOG_CONTEXT:
                # Issue 8: AGI commands would wait behind the prompt the lost
                # session left playing; a redirect to the watchdog's T
                # extension (general desk, YHT_FALLBACK=server-lost) is now.
                await self.session.action(
                    "Redirect",
                    {
                        "Channel": channel,
                        "Context": WATCHDOG_CONTEXT,
                        "Exten": "T",
                        "Priority": 1,
                    },
                )
                return
            for command in (
                f'SET VARIABLE YHT_DESK "{FALLBACK_DESK}"',
                "ASYNCAGI BREAK",
            ):
                await self.session.action(
                    "AGI", {"Channel": channel, "Command": command}
                )
        except (AmiError, AgiError) as exc:
            log.ivr.warning("could not release %s: %s", channel, exc)

    # -- dial plan versions, live reload and the admin API (issue 3) -------------

    async def publish_plan(self, text: str, author: str) -> PlanVersion:
        """Validate and publish a dial plan for new calls; DialplanError if bad.

        Calls already in a menu finish on the version they began with.
        """
        return (await self.plans.publish(text, author)).version

    async def rollback(self, author: str, to: int | None = None) -> PlanVersion:
        """Publish the previous version (or version ``to``) again."""
        return (await self.plans.rollback(author, to)).version

    async def caller_facts(self, number: str, plan=None) -> CallerFacts:
        """What caller routing needs to know about ``number``, for ``plan``
        (the call's bound plan; default the live one). Never fails a call: a
        ticket store that cannot answer means no recent desk."""
        plan = plan or self.plan
        tickets: list = []
        if plan.returning_callers is not None and number and self.store is not None:
            try:
                found = await self.store.find(caller=number)
            except TicketStoreError as exc:
                log.routing.warning("no recent tickets for caller routing: %s", exc)
                found = []
            for ticket in found:
                arrived = parse_iso(ticket.get("arrived_at"))
                if arrived is not None:
                    tickets.append((arrived, ticket.get("desk")))
        return facts_for(plan, number, tickets, datetime.now(BEIJING))

    def _plan_changed(self, plan, version: PlanVersion) -> None:
        self.plan = plan
        if self.agents is not None:  # issue 4: a new desk gets its agents
            self.agents.desks_changed({d: plan.queue_name(d) for d in plan.desks})

    async def _start_admin(self) -> None:
        path = self.config.dialplan_path
        text = await asyncio.to_thread(Path(path).read_text, encoding="utf-8-sig")
        await self.plans.open(text, str(path))
        watcher = PlanFileWatcher(
            path, lambda new: self.plans.publish_file(new, str(path))
        )
        task = asyncio.create_task(watcher.run(), name="dialplan-watch")
        self._admin_tasks.add(task)
        settings = self.admin_settings
        if not settings.enabled:
            log.web.info("admin API off: no admin.toml beside the configuration")
            return
        from ivr.prompt_library import PromptLibrary
        from ivr.web.app import AdminServer, make_app
        from ivr.web.auth import TokenBook

        assert settings.tokens_file is not None
        library = PromptLibrary(settings.prompts_dir, settings.install_dir)
        tokens = TokenBook.load(settings.tokens_file)
        from ivr.web.status_routes import STATUS_OPERATIONS, attach  # issue 4

        extra = self._ticket_routes() + STATUS_OPERATIONS
        extra += self._transfer_routes()  # issue 5
        app = make_app(self.plans, library, tokens, extra=extra)
        attach(app, self.desks, self.agents)  # issue 4
        self._attach_transfers(app)  # issue 5
        self._attach_pages(app, settings)  # issue 9
        if self.workorders is not None:
            from ivr.web.tickets_api import WORKORDERS

            app[WORKORDERS] = self.workorders
        self.admin_api = AdminServer(app, settings.host, settings.port)
        await self.admin_api.start()

    def _attach_pages(self, app, settings) -> None:
        """The web pages (issue 9) on the admin app, with their users file."""
        from ivr.web.accounts import UserBook, users_file
        from ivr.web.pages import attach as attach_pages

        users = UserBook.load(users_file(settings))
        attach_pages(
            app,
            users,
            store=self.store,
            tracker=self.tracker,
            targets=self.config.transfer_targets,
            # The browser phones' address and SIP accounts, when the one who
            # rendered Asterisk's configuration gave them (the lab, issue 9).
            softphone=getattr(self, "softphone", None),
        )

    def _ticket_routes(self) -> tuple:
        """The tickets API (work orders) when its catalog of units exists."""
        from ivr.catalog import catalog_path, load_catalog
        from ivr.web.tickets_api import TICKET_OPERATIONS
        from ivr.workorders import WorkOrders

        path = catalog_path(self.config.source or "config/hotline.toml")
        if not path.exists():
            log.web.info("tickets API off: no %s", path.name)
            return ()
        self.workorders = WorkOrders(self.store, load_catalog(path))
        return TICKET_OPERATIONS

    async def _stop_admin(self) -> None:
        if self.admin_api is not None:
            await self.admin_api.stop()
            self.admin_api = None
        for task in self._admin_tasks:
            task.cancel()
        await asyncio.gather(*self._admin_tasks, return_exceptions=True)
        self._admin_tasks.clear()

    async def _set_channel_variable(self, channel: str, name: str, value: str):
        await self.session.action(
            "Setvar", {"Channel": channel, "Variable": name, "Value": value}
        )

    # -- agents, waiting callers and callbacks (issue 4) -------------------------

    def _start_queueing(self) -> None:
        plan, routing = self.plan, self.config.routing
        book = AgentBook(
            self.config.agents,
            {desk: plan.queue_name(desk) for desk in plan.desks},
            wrapup=routing.wrapup,
            default_wrapup=routing.wrapup_seconds,
        )
        self.agents = AgentDesk(self.session, self.bus, book)
        for problem in book.problems():
            log.routing.warning("configuration: %s", problem)
        self.waiting = WaitingRoom(self.session, self.tracker, lambda: self.plan)
        self.callbacks = Callbacks(
            self.session,
            self.tracker,
            lambda number: self.callback_dial(number=number),
            caller_id=routing.callback_caller_id,
        )
        for handler in (self.agents.handle, self.waiting.handle, self.callbacks.handle):
            self.session.on_event(handler)
        self.session.on_disconnected(lambda why: self.waiting.forget())
        self.desks = DeskBoard(
            self.bus,
            self.tracker,
            self.agents,
            lambda: self.plan,
            callbacks=self.callbacks,
            interval=routing.status_interval,
        )
        self.session.on_event(self.desks.handle)
        self.bus.subscribe("commands/agent/+", self.agents.on_command)
        self.bus.subscribe("commands/call/flag", self.waiting.on_command)
        self._start_surveys()  # issue 6

    def _queueing_tasks(self) -> dict[str, Coroutine]:
        return {
            "agents": self.agents.run(),
            "waiting": self.waiting.run(),
            "callbacks": self.callbacks.run(),
            "desk-status": self.desks.run(),
            "surveys": self.surveys.run(),  # issue 6
            "follow-ups": self.followups.run(),
            "transfers": self.transfers.run(),  # issue 5
        }

    # -- the in-call survey and follow-up calls (issue 6) -------------------------

    def _start_surveys(self) -> None:
        from ivr.followup import FollowUps
        from ivr.survey import InCallSurveys

        self.surveys = InCallSurveys(self.tracker, self.bus, self._survey_orders)
        self.followups = FollowUps(
            self.session,
            self._survey_orders,
            self.bus,
            lambda number: self.callback_dial(number=number),
            self.config.followup,
            caller_id=self.config.routing.callback_caller_id,
        )
        self.session.on_event(self.surveys.handle)
        self.session.on_event(self.followups.handle)

    def _survey_orders(self):
        """The work orders surveys write through: the tickets API's if it runs."""
        if self.workorders is not None:
            return self.workorders
        if getattr(self, "_own_orders", None) is None:
            from ivr.catalog import catalog_path, load_catalog
            from ivr.workorders import WorkOrders
            from routing.workorder import Catalog

            path = catalog_path(self.config.source or "config/hotline.toml")
            catalog = load_catalog(path) if path.exists() else Catalog({}, {}, {})
            self._own_orders = WorkOrders(self.store, catalog)
        return self._own_orders

    # -- warm transfers and the hand-off flow (issue 5) ---------------------------

    def _start_transfers(self) -> None:
        from ivr.handoff import Handoff
        from ivr.transfer import TransferDesk

        source = self.config.source
        base = Path(source).resolve().parent if source else Path()
        targets = self.config.transfer_targets
        self.handoff = Handoff(self.store, self.bus, targets, base)
        self.transfers = TransferDesk(
            self.session,
            self.tracker,
            self.bus,
            targets,
            handoff=self.handoff,
        )
        self.session.on_event(self.transfers.handle)
        self.handoff.subscribe()
        # A dial plan's "transfer: <target>" dials the configured target.
        self.engine.direct_transfer = self.transfers.direct

    def _transfer_routes(self) -> tuple:
        from ivr.web.transfer_routes import TRANSFER_OPERATIONS

        return TRANSFER_OPERATIONS

    def _attach_transfers(self, app) -> None:
        from ivr.web.transfer_routes import attach as attach_transfers

        attach_transfers(app, self.transfers, self.handoff)

    async def _resync_transfers(self) -> None:
        """Transfers followed across a reconnect (docs/transfers.md)."""
        if self.transfers is not None:
            await self.transfers.resync()

    async def _resync_waiting(self) -> None:
        """Callers waiting now, once the tracker knows the calls again."""
        await self.waiting.resync()
        await self.desks.resync(self.session)


async def serve(config: Config) -> int:
    server = HotlineServer(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, server.stop)
    await server.run()
    return 0
