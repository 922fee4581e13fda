"""The automatic follow-up call after a ticket is closed.

Closing a ticket (``close``, or ``answer`` on the spot) writes a pending row
to ``follow_ups`` in the same transaction (:mod:`ivr.workorders`), so a
follow-up outlives a restart. This worker looks for due rows every few
seconds and, within the allowed hours, originates the caller's phone (the
``callback_dial`` string, as callbacks do) into ``yht-followup``, which asks
the survey question (:mod:`ivr.survey`). A score is recorded as the
``follow_up`` survey: the ticket moves to followed_up, and a 3 reopens it.
No answer or busy is tried again, a bounded number of times, then the caller
is recorded as unreachable (``routing.survey`` decides). Each attempt is in
the ticket's timeline (``follow_up_call``) and on MQTT
(``tickets/<number>/follow_up``).

A row is marked before its call is placed (attempts + 1, next try already
scheduled), so a server that dies mid-call tries again later instead of
twice at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from panoramisk.message import Message

from ivr import log
from ivr.errors import AmiError, TicketStoreError
from ivr.retry import STORE_RETRY_DELAYS, retry_store
from ivr.survey import is_survey
from ivr.tasks import TaskOwner
from ivr.tickets import parse_iso
from ivr.workorders import FOLLOW_UP_CALL, TicketRefused, WorkOrders, iso
from routing import survey as rules
from routing import workorder as wo
from routing.numbers import is_dialable

# After the survey began, how long to wait for its answer or the hang-up.
ANSWER_WAIT = 90.0


class FollowUps:
    """Pending follow-up calls in the store, and the calls being made."""

    def __init__(
        self,
        session,
        orders: Callable[[], WorkOrders],
        bus,
        dial: Callable[[str], str],
        policy: rules.FollowUpPolicy,
        *,
        caller_id: str = "12345",
        poll: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.session = session
        self.orders = orders
        self.bus = bus
        self.dial = dial
        self.policy = policy
        self.caller_id = caller_id
        self.poll = poll
        self.clock = clock
        self.calls: dict[str, asyncio.Future] = {}  # by channel id, while live
        self.causes: dict[str, str] = {}  # hangup cause by channel id
        self._busy: set[tuple[int, int]] = set()  # (ticket id, round) in hand
        self._boot = f"{int(time.time()):x}"
        self._owned = TaskOwner(log.tickets)

    async def run(self) -> None:
        """Look for due follow-ups until cancelled; own the calls placed."""
        owner = asyncio.create_task(self._owned.run(), name="follow-up calls")
        try:
            while True:
                if self.policy.enabled and self.session_ready():
                    try:
                        await self.tick()
                    except TicketStoreError as exc:
                        log.tickets.warning("follow-ups: store failing: %s", exc)
                    except Exception:
                        # Never take the server down: the next round tries again.
                        log.tickets.exception("follow-ups: a round failed")
                await asyncio.sleep(self.poll)
        finally:
            owner.cancel()
            await asyncio.gather(owner, return_exceptions=True)

    def session_ready(self) -> bool:
        return bool(getattr(self.session, "connected", True))

    async def due(self, now: datetime) -> list[dict]:
        """Pending follow-ups whose time has come (the first ones after delay)."""
        store = self.orders().store
        rows = await store.fetchall(
            "SELECT f.ticket_id, f.round, f.attempts, f.next_at, f.created_at, "
            "t.number, t.caller_number, t.state, t.reopens "
            "FROM follow_ups f JOIN tickets t ON t.id = f.ticket_id "
            "WHERE f.state = 'pending' AND f.next_at <= ? ORDER BY f.next_at",
            (iso(now),),
        )
        ready = []
        for row in rows:
            if row["attempts"] == 0:
                when = rules.first_call_at(self.policy, parse_iso(row["created_at"]))
            else:
                when = rules.allowed_at(self.policy, parse_iso(row["next_at"]))
            if when > now:
                await self._update(row, next_at=iso(when))
                continue
            ready.append(row)
        return ready

    async def tick(self) -> None:
        now = self.clock()
        for row in await self.due(now):
            key = (row["ticket_id"], row["round"])
            if key in self._busy:
                continue
            self._busy.add(key)
            self._owned.spawn(self._follow_up(row, key), f"follow-up {row['number']}")

    # -- one attempt -------------------------------------------------------------

    async def _follow_up(self, row: dict, key: tuple[int, int]) -> None:
        try:
            await self._attempt(row)
        finally:
            self._busy.discard(key)

    async def _attempt(self, row: dict) -> None:
        number = row["number"]
        if row["state"] != wo.State.CLOSED.value or row["reopens"] != row["round"]:
            # Followed up by hand, or reopened: nothing to ask any more.
            await self._update(row, state="cancelled", last_result=row["state"] or "")
            return
        if not is_dialable(row["caller_number"]):
            # It goes into a Dial() string: only a plain number (routing/numbers).
            await self._finish(row, 0, "no_number", rules.Next.UNREACHABLE, None)
            return
        attempt = row["attempts"] + 1
        now = self.clock()
        retry_at = now + timedelta(seconds=self.policy.retry_after)
        await self._update(
            row,
            attempts=attempt,
            next_at=iso(rules.allowed_at(self.policy, retry_at)),
            last_result="calling",
        )
        result, score, detail = await self._call(row, attempt)
        # What the caller said is kept through a failing store (retried), the
        # attempt first: if the store never comes back, the caller is not
        # rung again for an answer already given.
        step, next_at = rules.after_attempt(self.policy, attempt, result, self.clock())
        await retry_store(
            lambda: self._finish(row, attempt, result, step, next_at, score, detail),
            f"ticket {number}: follow-up result",
            STORE_RETRY_DELAYS,
        )
        if result == rules.RATED:

            async def record() -> None:
                try:
                    await self.orders().record_survey(number, score, "follow_up")
                except TicketRefused as exc:
                    log.tickets.warning("follow-up of %s not recorded: %s", number, exc)

            await retry_store(
                record, f"ticket {number}: follow-up score", STORE_RETRY_DELAYS
            )

    async def _call(self, row: dict, attempt: int) -> tuple[str, int | None, str]:
        """Place one call: the result, the score, and Asterisk's reason."""
        channel_id = f"yhtfu-{self._boot}-{row['ticket_id']}-{row['round']}-{attempt}"
        answer = asyncio.get_running_loop().create_future()
        self.calls[channel_id] = answer
        headers = {
            "Channel": self.dial(row["caller_number"]),
            "Context": "yht-followup",
            "Exten": "s",
            "Priority": 1,
            "ChannelId": channel_id,
            "CallerID": f'"{self.caller_id}" <{self.caller_id}>',
            "Timeout": self.policy.ring_seconds * 1000,
            "Variable": [f"YHT_TICKET={row['number']}", f"YHT_FOLLOWUP={channel_id}"],
        }
        log.tickets.info(
            "ticket %s: follow-up call %d to %s",
            row["number"],
            attempt,
            log.mask_number(row["caller_number"]),
        )
        try:
            placed = await self.session.originate(
                headers, timeout=self.policy.ring_seconds + 30
            )
            if not placed.ok:
                await asyncio.sleep(0.5)  # the Hangup may come just after
                cause = self.causes.get(channel_id, "")
                result = rules.originate_result(False, placed.reason, cause)
                return result, None, f"reason {placed.reason}, cause {cause or '-'}"
            key = await asyncio.wait_for(answer, ANSWER_WAIT)
        except (AmiError, TimeoutError) as exc:
            log.tickets.warning("follow-up of %s: %s", row["number"], exc)
            return rules.FAILED, None, str(exc)
        finally:
            self.calls.pop(channel_id, None)
            self.causes.pop(channel_id, None)
        score = rules.score_of(key)
        if score is None:
            return rules.NO_SCORE, None, ""
        return rules.RATED, score, ""

    async def _finish(
        self,
        row: dict,
        attempt: int,
        result: str,
        step: rules.Next,
        next_at: datetime | None,
        score: int | None = None,
        detail: str = "",
    ) -> None:
        state = "pending" if step is rules.Next.RETRY else step.value
        store = self.orders().store
        data = {"attempt": attempt, "result": result, "next": step.value}
        if detail:
            data["reason"] = detail
        if score is not None:
            data["score"] = score
        if next_at is not None:
            data["retry_at"] = iso(next_at)
        async with store.transaction():
            await self._write(
                store,
                row,
                state=state,
                last_result=result,
                next_at=iso(next_at or self.clock()),
            )
            await store.append_event(
                row["ticket_id"],
                "follow_up_call",
                {**data, "by": FOLLOW_UP_CALL.label()},
            )
        self.bus.publish("ticket.follow_up", f"tickets/{row['number']}/follow_up", data)
        log.tickets.info(
            "ticket %s: follow-up attempt %d: %s, %s",
            row["number"],
            attempt,
            result,
            step,
        )

    # -- the store -----------------------------------------------------------------

    async def _update(self, row: dict, **fields) -> None:
        store = self.orders().store
        async with store.transaction():
            await self._write(store, row, **fields)

    async def _write(self, store, row: dict, **fields) -> None:
        fields["updated_at"] = iso(self.clock())
        names = ", ".join(f"{name} = ?" for name in fields)
        await store.execute(
            f"UPDATE follow_ups SET {names} WHERE ticket_id = ? AND round = ?",
            (*fields.values(), row["ticket_id"], row["round"]),
        )

    # -- AMI events ------------------------------------------------------------------

    def handle(self, event: Message) -> None:
        name = event.get("Event", "")
        if is_survey(event, "follow_up") and event.get("Stage") == "done":
            self._settle(event.get("FollowUp", ""), event.get("Key", ""))
        elif name == "Hangup":
            # Hung up before answering the question: no score.
            channel_id = event.get("Uniqueid", "")
            if channel_id in self.calls:
                self.causes[channel_id] = event.get("Cause", "")
            self._settle(channel_id, "")

    def _settle(self, channel_id: str, key: str) -> None:
        answer = self.calls.get(channel_id)
        if answer is not None and not answer.done():
            answer.set_result(key)
