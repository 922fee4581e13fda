"""Work orders in the ticket store: moves, surveys and the overdue list.

Each move loads the ticket's work order, asks ``routing.workorder`` whether it
may be made, and writes the result and its timeline entry in one single-writer
transaction (case 20), so two people acting on one ticket at once are put in
order and the second is checked against what the first did.

    TicketStoreError
    ├── TicketNotFound     (also LookupError) no ticket by that number
    └── TicketRefused      (also ValueError) the rules refuse; carries ``code``
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from ivr import log
from ivr.errors import TicketStoreError
from ivr.tickets import TicketStore, parse_iso
from routing import workorder as wo
from routing.repeats import address_key


class TicketNotFound(TicketStoreError, LookupError):
    def __init__(self, key: str) -> None:
        self.code = "no_ticket"
        super().__init__(f"no ticket {key!r}")


class TicketRefused(TicketStoreError, ValueError):
    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


FOLLOW_UP_CALL = wo.Actor(wo.Role.SYSTEM, "follow-up")


class WorkOrders:
    def __init__(
        self,
        store: TicketStore,
        catalog: wo.Catalog,
        calendar: wo.WorkCalendar | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.calendar = calendar or wo.WorkCalendar()

    # -- moves ----------------------------------------------------------------

    async def act(
        self,
        key: str,
        action: str,
        actor: wo.Actor,
        params: dict[str, Any] | None = None,
        *,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Make one move on a ticket; the ticket as it is afterwards."""
        now = at or datetime.now(UTC)
        async with self.store.transaction():
            row = await self._ticket(key)
            change = await self._apply(row, action, actor, params, now)
        return await self._after(row["number"], change)

    async def record_survey(
        self,
        ticket: str,
        score: int,
        source: str,
        *,
        actor: wo.Actor | None = None,
        note: str = "",
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Keep the caller's verdict; a 3 at the follow-up reopens the ticket.

        ``source`` is ``in_call`` (the caller stayed on the line after the
        agent hung up) or ``follow_up`` (the follow-up call, which also moves a
        closed ticket to followed_up). An in-call survey is taken once a call.
        """
        now = at or datetime.now(UTC)
        try:
            score = wo.check_score(score)
            source = wo.check_source(source)
        except wo.TransitionError as exc:
            raise TicketRefused(exc.code, str(exc)) from None
        actor = actor or FOLLOW_UP_CALL
        async with self.store.transaction():
            row = await self._ticket(ticket)
            surveys = await self.store.fetchall(
                "SELECT source FROM surveys WHERE ticket_id = ?", (row["id"],)
            )
            if source == "in_call" and any(s["source"] == "in_call" for s in surveys):
                raise TicketRefused(
                    "already_surveyed", f"ticket {row['number']} was rated in the call"
                )
            if source == "follow_up":
                params = {"score": score, **({"note": note} if note else {})}
                await self._apply(row, "follow_up", actor, params, now)
            await self.store.execute(
                "INSERT INTO surveys (ticket_id, seq, at, score, source, actor) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (row["id"], len(surveys) + 1, iso(now), score, source, actor.label()),
            )
            await self.store.execute(
                "UPDATE tickets SET satisfaction = ?, updated_at = ? WHERE id = ?",
                (score, iso(now), row["id"]),
            )
            await self.store.append_event(
                row["id"],
                "survey",
                {"score": score, "source": source, "by": actor.label()},
                iso(now),
            )
            if source == "follow_up" and score == 3:
                reason = "the caller was not satisfied at the follow-up"
                await self._apply(
                    row, "reopen", FOLLOW_UP_CALL, {"reason": reason}, now
                )
        log.tickets.info(
            "ticket %s rated %d (%s)%s",
            row["number"],
            score,
            source,
            ": reopened" if score == 3 and source == "follow_up" else "",
        )
        return await self.view(row["number"])

    async def _apply(
        self,
        row: dict[str, Any],
        action: str,
        actor: wo.Actor,
        params: dict[str, Any] | None,
        now: datetime,
    ) -> wo.Change:
        """Check and write one move inside the caller's transaction."""
        order = await self._load(row)
        try:
            change = wo.apply(
                order,
                action,
                actor,
                now,
                catalog=self.catalog,
                calendar=self.calendar,
                params=params,
            )
        except wo.TransitionError as exc:
            raise TicketRefused(exc.code, str(exc)) from None
        await self._save(row, change, actor, now)
        return change

    async def _after(self, number: str, change: wo.Change) -> dict[str, Any]:
        log.tickets.info(
            "ticket %s: %s (%s -> %s)",
            number,
            change.action,
            change.before or "-",
            change.after or "-",
        )
        provisional = [a for a in change.order.current() if a.provisional]
        if provisional and change.action in ("dispatch", "add_unit"):
            log.tickets.warning(
                "ticket %s: deadline %s counted with weekends only: the holiday "
                "calendar has no data for that year yet (update chinese-calendar)",
                number,
                provisional[-1].deadline,
            )
        return await self.view(number)

    # -- reading and writing a work order ---------------------------------------

    async def _ticket(self, key: str) -> dict[str, Any]:
        if not isinstance(key, str) or not key:
            raise TicketNotFound(str(key))
        row = await self.store.ticket_row(key)
        if row is None:
            raise TicketNotFound(key)
        return row

    async def _load(self, row: dict[str, Any]) -> wo.WorkOrder:
        # The row may be stale after a first move in the same transaction.
        fresh = await self.store.fetchall(
            "SELECT state, category, supervised, reopens, round, last_follow_up "
            "FROM tickets WHERE id = ?",
            (row["id"],),
        )
        ticket = fresh[0]
        parts = await self.store.fetchall(
            "SELECT * FROM assignments WHERE ticket_id = ? ORDER BY n", (row["id"],)
        )
        return wo.WorkOrder(
            state=wo.State(ticket["state"]) if ticket["state"] else None,
            category=ticket["category"],
            assignments=[_assignment(part) for part in parts],
            round=ticket["round"],
            supervised=bool(ticket["supervised"]),
            reopens=ticket["reopens"],
            last_follow_up=ticket["last_follow_up"],
        )

    async def _save(
        self, row: dict[str, Any], change: wo.Change, actor: wo.Actor, now: datetime
    ) -> None:
        order, action, stamp = change.order, change.action, iso(now)
        lead = order.lead()
        fields: dict[str, Any] = {
            "state": order.state.value if order.state else None,
            "supervised": int(order.supervised),
            "reopens": order.reopens,
            "round": order.round,
            "last_follow_up": order.last_follow_up,
            "lead_unit": lead.unit if lead else None,
            "deadline": lead.deadline.isoformat() if lead else None,
            "dispatched_at": iso(lead.dispatched_at) if lead else None,
            "signed_at": iso(lead.signed_at) if lead and lead.signed_at else None,
            "handled_at": iso(lead.handled_at) if lead and lead.handled_at else None,
            "on_time": _flag(lead.on_time()) if lead else None,
        }
        if action == "accept":
            intake = change.data
            fields.update(
                category=intake["category"],
                content=intake["content"],
                address=intake["address"],
                address_key=address_key(intake["address"]),
                area=intake["area"],
                enterprise=int(intake["enterprise"]),
                enterprise_name=intake["enterprise_name"],
                accepted_at=stamp,
                accepted_by=actor.label(),
            )
        if action == "answer":
            fields["answer"] = change.data["answer"]
        if action in ("answer", "close"):
            fields["closed_at"] = stamp
        if action == "follow_up":
            fields["followed_up_at"] = stamp
        if action == "reopen":
            fields.update(closed_at=None, followed_up_at=None)
        fields["updated_at"] = stamp
        assignments = ", ".join(f"{name} = ?" for name in fields)
        await self.store.execute(
            f"UPDATE tickets SET {assignments} WHERE id = ?",
            (*fields.values(), row["id"]),
        )

        await self.store.execute(
            "DELETE FROM assignments WHERE ticket_id = ?", (row["id"],)
        )
        for part in order.assignments:
            values = _assignment_row(row["id"], part)
            await self.store.execute(
                f"INSERT INTO assignments ({', '.join(values)}) "
                f"VALUES ({', '.join('?' for _ in values)})",
                values.values(),
            )

        entry = {
            "by": actor.label(),
            "role": actor.role.value,
            "before": change.before.value if change.before else None,
            "after": change.after.value if change.after else None,
            **change.data,
        }
        await self.store.append_event(row["id"], f"order.{action}", entry, stamp)
        if action == "accept":
            await self.store.link_repeat(row["id"], at=stamp)
        if change.after is wo.State.CLOSED:
            # Issue 6: the follow-up call, kept in the store (ivr/followup.py).
            await self.store.execute(
                "INSERT INTO follow_ups (ticket_id, round, next_at, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (row["id"], order.reopens, stamp, stamp, stamp),
            )

    # -- reads ----------------------------------------------------------------

    async def view(self, key: str) -> dict[str, Any]:
        """The ticket with its timeline, its units' parts and its surveys."""
        ticket = await self.store.get(key)
        if ticket is None:
            raise TicketNotFound(key)
        ticket["assignments"] = await self.store.fetchall(
            "SELECT n, round, unit, lead, step, deadline, provisional, "
            "dispatched_at, signed_at, handled_at, result, return_reason, "
            "extension_to, extension_reason, extensions, reminders "
            "FROM assignments WHERE ticket_id = ? ORDER BY n",
            (ticket["id"],),
        )
        for part in ticket["assignments"]:
            part["lead"] = bool(part["lead"])
            part["provisional"] = bool(part["provisional"])
            known = self.catalog.units.get(part["unit"])
            part["unit_name"] = known.name if known else part["unit"]
        ticket["surveys"] = await self.store.fetchall(
            "SELECT at, score, source, actor FROM surveys WHERE ticket_id = ? "
            "ORDER BY seq",
            (ticket["id"],),
        )
        return ticket

    async def overdue(self, *, at: datetime | None = None) -> list[dict[str, Any]]:
        """Units' parts past their deadline and not yet handled, oldest first."""
        today = wo.local_day(at or datetime.now(UTC)).isoformat()
        return await self.store.fetchall(
            "SELECT t.number, a.unit, a.lead, a.step, a.deadline, a.reminders, "
            "t.supervised FROM assignments a JOIN tickets t ON t.id = a.ticket_id "
            "WHERE a.step IN ('dispatched', 'signed', 'returned') "
            "AND a.round = t.round AND a.deadline < ? "
            "ORDER BY a.deadline, t.number",
            (today,),
        )


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _assignment(part: dict[str, Any]) -> wo.Assignment:
    def when(name: str) -> datetime | None:
        return parse_iso(part[name])

    return wo.Assignment(
        n=part["n"],
        unit=part["unit"],
        lead=bool(part["lead"]),
        step=wo.Step(part["step"]),
        deadline=date.fromisoformat(part["deadline"]),
        dispatched_at=parse_iso(part["dispatched_at"]),
        round=part["round"],
        signed_at=when("signed_at"),
        handled_at=when("handled_at"),
        result=part["result"],
        provisional=bool(part["provisional"]),
        before_return=wo.Step(part["before_return"]) if part["before_return"] else None,
        return_reason=part["return_reason"],
        extension_to=_day(part["extension_to"]),
        extension_reason=part["extension_reason"],
        extensions=part["extensions"],
        reminders=part["reminders"],
    )


def _assignment_row(ticket_id: int, part: wo.Assignment) -> dict[str, Any]:
    return {
        "ticket_id": ticket_id,
        "n": part.n,
        "round": part.round,
        "unit": part.unit,
        "lead": int(part.lead),
        "step": part.step.value,
        "deadline": part.deadline.isoformat(),
        "provisional": int(part.provisional),
        "dispatched_at": iso(part.dispatched_at),
        "signed_at": iso(part.signed_at) if part.signed_at else None,
        "handled_at": iso(part.handled_at) if part.handled_at else None,
        "result": part.result,
        "before_return": part.before_return.value if part.before_return else None,
        "return_reason": part.return_reason,
        "extension_to": part.extension_to.isoformat() if part.extension_to else None,
        "extension_reason": part.extension_reason,
        "extensions": part.extensions,
        "reminders": part.reminders,
    }
