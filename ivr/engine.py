"""The IVR engine: runs a dial plan's menu walk on a call in AsyncAGI.

``routing.menu.MenuWalk`` decides; this module plays prompts, collects keys
and finally hands the call back to the dialplan with the desk to queue to.
Whatever goes wrong here (a bug, the AMI link dropping, a prompt missing), the
caller is sent to the general desk rather than left in silence: the dialplan
queues to ``general`` whenever ``YHT_DESK`` is empty.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import PurePosixPath

from ivr import log
from ivr.ami.agi import AgiChannel
from ivr.calls import Call, CallTracker
from ivr.errors import AgiError, AgiHangup, AmiError
from routing.hours import BEIJING
from routing.menu import Collect, Hangup, MenuWalk, Play, Queue, Transfer
from routing.overflow import initial_max_penalty

FALLBACK_DESK = "general"
TYPE_AHEAD = "0123456789*#"
# How long the hand-off to a desk waits for a slow ticket store, at most.
TICKET_WAIT = 2.0


class PromptPaths:
    """Where Asterisk finds a prompt: ``<sounds_dir>/<lang>/<name>``."""

    def __init__(self, sounds_dir: str) -> None:
        self.sounds_dir = PurePosixPath(sounds_dir)

    def __call__(self, name: str, language: str = "zh") -> str:
        return str(self.sounds_dir / language / name)


class IvrEngine:
    def __init__(
        self,
        plan_provider: Callable[[], object],
        tracker: CallTracker,
        prompts: PromptPaths,
        caller_facts: Callable[[str, object], Awaitable[object]] | None = None,
    ) -> None:
        self._plan = plan_provider
        self._caller_facts = caller_facts
        self.tracker = tracker
        self.prompts = prompts
        self._tasks: set[asyncio.Task] = set()
        self.calls_routed = 0
        # Issue 8: told before each ASYNCAGI BREAK (ivr/watchdog.py).
        self.before_release: Callable[[str], Awaitable[None]] | None = None
        # Issue 5: a menu's "transfer" action; (call, target) -> the channel
        # variables of yht-hotline's Dial(), None if the target is unknown.
        self.direct_transfer: Callable[[Call, str], dict | None] | None = None

    def start_call(self, channel: AgiChannel) -> None:
        """AsyncAGIStart handler: run the call in a task this engine owns."""
        task = asyncio.create_task(self._run(channel), name=f"ivr {channel.channel}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def active(self) -> int:
        return len(self._tasks)

    async def _run(self, channel: AgiChannel) -> None:
        # The greeting does not wait for the ticket: under load the ticket
        # writes queue up, and a late greeting loses the caller's first key.
        try:
            call = await self.tracker.call_for(
                channel.channel, channel.linkedid, channel.env, wait=False
            )
        except AgiHangup:
            return
        # A walk is bound to the plan version current when the call began:
        # a reload never changes the menu under a caller's feet.
        plan = self._plan()
        facts = None
        if self._caller_facts is not None:
            try:
                facts = await self._caller_facts(call.caller_number, plan)
            except Exception:
                # Caller routing is a nicety; the menu must go on without it.
                log.routing.exception("no caller facts for %s", call.label)
        # Desk hours and notices are judged at the hotline's clock.
        walk = MenuWalk(plan, language="zh", caller=facts, now=datetime.now(BEIJING))
        try:
            await self._walk(channel, call, walk, plan)
        except AgiHangup:
            log.ivr.info("call %s hung up in the menu", call.label)
        except asyncio.CancelledError:
            await self._rescue(channel, call, "the server is shutting down")
            raise
        except (AgiError, AmiError) as exc:
            log.ivr.warning(
                "call %s: IVR failed (%s); sending it to the general desk",
                call.label,
                exc,
            )
            await self._rescue(channel, call, f"IVR failure: {exc}")
        except Exception:
            log.ivr.exception(
                "call %s: IVR bug; sending it to the general desk", call.label
            )
            await self._rescue(channel, call, "IVR failure")
        finally:
            if walk.path:
                self.tracker.path(call, walk.path)

    async def _walk(
        self, channel: AgiChannel, call: Call, walk: MenuWalk, plan
    ) -> None:
        step = walk.start()
        menu = None
        while True:
            if step.menu and step.menu != menu:
                menu = step.menu
                self.tracker.menu_entered(call, menu)
            if isinstance(step, Play):
                # Callers who know the menu may key ahead during the greeting
                # or a notice: the key answers the menu that follows.
                key = await channel.stream_file(
                    self.prompts(step.prompt, step.language), TYPE_AHEAD
                )
                step = walk.after_play()
                if key and isinstance(step, Collect) and step.max_digits == 1:
                    step = walk.on_key(key)
                    self.tracker.path(call, walk.path)
            elif isinstance(step, Collect):
                key = await channel.get_data(
                    self.prompts(step.prompt, step.language),
                    step.timeout,
                    step.max_digits,
                )
                step = walk.on_key(key) if key else walk.on_timeout()
                self.tracker.path(call, walk.path)
            elif isinstance(step, Queue):
                await self._queue(
                    channel,
                    call,
                    step.desk,
                    plan.queue_name(step.desk),
                    step.priority,
                    step.reason,
                    initial_max_penalty(plan.desks.get(step.desk)),
                )
                return
            elif isinstance(step, Hangup):
                if step.prompt:
                    await channel.stream_file(self.prompts(step.prompt, step.language))
                self.tracker.note(call, "hangup_by_ivr", {"prompt": step.prompt})
                await channel.command("HANGUP")
                return
            elif isinstance(step, Transfer) and self.direct_transfer is not None:
                await self._transfer(channel, call, step)  # issue 5
                return
            else:
                raise AgiError(f"the IVR cannot run a {type(step).__name__} step")

    async def _queue(
        self,
        channel: AgiChannel,
        call: Call,
        desk: str,
        queue: str,
        priority: int,
        reason: str,
        max_penalty: int | None = None,
    ) -> None:
        self.tracker.routed(call, desk, priority, reason)
        variables = {}
        with contextlib.suppress(TimeoutError):
            # Agents' screens find the ticket by this variable.
            await asyncio.wait_for(call.opened.wait(), TICKET_WAIT)
            variables["YHT_TICKET"] = call.ticket_number
        variables |= {"YHT_DESK": queue, "YHT_PRIORITY": str(priority)}
        if max_penalty is not None:
            # The desk's best agents first; ivr.waiting widens it later.
            variables["YHT_MAX_PENALTY"] = str(max_penalty)
        await self._release(channel, variables)
        self.calls_routed += 1

    async def _transfer(self, channel: AgiChannel, call: Call, step: Transfer) -> None:
        """Issue 5: the dialplan dials the target; if that fails, the caller
        goes to the general desk at the front (docs/transfers.md)."""
        variables = self.direct_transfer(call, step.target)
        if variables is None:
            raise AgiError(f"no transfer target {step.target!r} is configured")
        reason = f"transfer to {step.target} ({step.reason}); general desk if it fails"
        self.tracker.routed(call, FALLBACK_DESK, 0, reason)
        await self._release(channel, {**variables, "YHT_DESK": FALLBACK_DESK})

    async def _rescue(self, channel: AgiChannel, call: Call, why: str) -> None:
        """Never strand a caller: hand the call to the general desk."""
        if channel.ended.is_set():
            return
        self.tracker.routed(call, FALLBACK_DESK, 0, why)
        try:
            await asyncio.shield(self._release_to_general(channel))
        except (AgiError, AmiError) as exc:
            # With no AMI link the channel cannot be told; the dialplan's own
            # fallback (and a server that adopts calls on reconnect) takes over.
            log.ivr.warning(
                "call %s could not be handed to the general desk: %s",
                call.label,
                exc,
            )

    async def _release_to_general(self, channel: AgiChannel) -> None:
        await self._release(channel, {"YHT_DESK": FALLBACK_DESK})

    async def _release(self, channel: AgiChannel, variables: dict[str, str]) -> None:
        if self.before_release is not None:
            await self.before_release(channel.channel)
        await channel.release(variables)
