"""The in-call satisfaction survey, and the survey prompts.

When the agent hangs up, a caller an agent answered stays on the line
(Queue option ``c``) and the dialplan's ``yht-survey`` asks for one key. It
reports with ``UserEvent: YhtSurvey``: ``Stage: asked`` when the question
begins, ``Stage: done`` with the ``Key`` (empty for a wrong key or none,
after one more try). The server writes a score to the ticket
(``WorkOrders.record_survey``) or ``survey_no_answer`` to its timeline, and
publishes both on MQTT. Follow-up calls use the same subroutine; their events
(``Source: follow_up``) are :mod:`ivr.followup`'s.

While the server is away the events are lost; the dialplan's NOTICE line in
Asterisk's own log keeps the ticket, the call and the key for each answer.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from panoramisk.message import Message

from ivr import log
from ivr.errors import HotlineError, TicketStoreError
from ivr.prompts import speak_if_changed
from ivr.retry import STORE_RETRY_DELAYS, retry_store
from ivr.tasks import TaskOwner
from ivr.workorders import TicketNotFound, TicketRefused, WorkOrders
from routing import workorder as wo
from routing.survey import score_of

USER_EVENT = "YhtSurvey"
IN_CALL = wo.Actor(wo.Role.SYSTEM, "in-call")
WRITE_RETRY_DELAYS = STORE_RETRY_DELAYS

# Placeholders until someone records them (recordings/prompts/<lang>/).
TEXTS = {
    "yht-survey": "请您对本次服务进行评价：满意请按1，基本满意请按2，不满意请按3。",
    "yht-survey-thanks": "感谢您的评价，再见。",
}


def build_survey_prompts(
    recordings: Path, out: Path, languages: Iterable[str] = ("zh",)
) -> list[str]:
    """Speak the survey prompts nobody recorded; the ``lang/name`` made.

    The callers' other languages get the Mandarin placeholder until their
    own recording exists, so the question is never silent.
    """
    if shutil.which("espeak-ng") is None:
        raise HotlineError(
            "espeak-ng is needed to make placeholder prompts: apt-get install espeak-ng"
        )
    made = []
    for language in dict.fromkeys(["zh", *languages]):
        for name, text in TEXTS.items():
            if (recordings / language / f"{name}.wav").exists():
                continue
            if speak_if_changed(text, out / language / f"{name}.wav"):
                made.append(f"{language}/{name}")
    if made:
        log.pbx.info("made %d survey prompts in %s", len(made), out)
    return made


def is_survey(event: Message, source: str) -> bool:
    return (
        event.get("Event") == "UserEvent"
        and event.get("UserEvent") == USER_EVENT
        and event.get("Source") == source
    )


class InCallSurveys:
    """Record what callers answer after their call with an agent."""

    def __init__(self, tracker, bus, orders: Callable[[], WorkOrders]) -> None:
        self.tracker = tracker
        self.bus = bus
        self.orders = orders
        self.recorded = 0
        self._owned = TaskOwner(log.tickets)

    async def run(self) -> None:
        await self._owned.run()

    def handle(self, event: Message) -> None:
        if not is_survey(event, "in_call"):
            return
        call = self.tracker.by_channel(event.get("Channel", ""))
        linkedid = event.get("Call") or (call.linkedid if call else "")
        ticket = event.get("Ticket") or (call.ticket_number if call else "")
        if not (ticket or linkedid):
            log.tickets.warning("a survey from an unknown call: ignored")
            return
        key = ticket or linkedid
        if event.get("Stage") == "asked":
            self._asked(call, key, linkedid)
            return
        score = score_of(event.get("Key"))
        if call is not None:
            # In the call's own order: the answer is kept before its end.
            self.tracker.in_order(lambda: self._record(key, score, call, linkedid))
        else:
            self._owned.spawn(self._retrying(key, score, linkedid), f"survey {key}")

    def _asked(self, call, key: str, linkedid: str) -> None:
        if call is None:
            data = {"linkedid": linkedid, "ticket": key}
            self.bus.publish("call.survey_asked", f"events/{linkedid or key}", data)
            return
        self.tracker.note(call, "survey_asked", {"source": "in_call"})

        async def publish() -> None:
            self.tracker.publish_now(call, "call.survey_asked", {})

        self.tracker.in_order(publish)

    async def _retrying(self, key: str, score: int | None, linkedid: str) -> None:
        """Record for a call the tracker does not know, trying a while."""
        # If it is given up, the NOTICE line in Asterisk's log still has the key.
        await retry_store(
            lambda: self._record(key, score, None, linkedid),
            f"in-call survey of {key} (score {score})",
            WRITE_RETRY_DELAYS,
        )

    async def _record(self, key: str, score: int | None, call, linkedid: str) -> None:
        """Write the answer and publish it; a store failure is raised (retried)."""
        try:
            number = await self._write(key, score)
        except TicketNotFound as exc:
            if self.tracker.journal_pending():
                # Its opening still waits in the journal (the store failed):
                # try again later, off the calls' queue.
                if call is not None:
                    self._owned.spawn(
                        self._retrying(key, score, linkedid), f"survey {key}"
                    )
                    return
                raise TicketStoreError(f"ticket of {key} still in the journal") from exc
            log.tickets.warning("in-call survey of %s not kept: %s", key, exc)
            return
        except TicketRefused as exc:
            log.tickets.warning("in-call survey of %s not kept: %s", key, exc)
            return
        self.recorded += 1
        data = {"score": score, "source": "in_call"}
        if call is not None:
            self.tracker.publish_now(call, "call.survey", data)
        else:
            data.update(linkedid=linkedid, ticket=number)
            self.bus.publish("call.survey", f"events/{linkedid or number}", data)
        log.tickets.info(
            "ticket %s: in-call survey %s",
            number,
            score if score is not None else "no answer",
        )

    async def _write(self, key: str, score: int | None) -> str:
        orders = self.orders()
        if score is not None:
            ticket = await orders.record_survey(key, score, "in_call", actor=IN_CALL)
            return ticket["number"]
        store = orders.store
        async with store.transaction():
            row = await store.ticket_row(key)
            if row is None:
                raise TicketNotFound(key)
            await store.append_event(
                row["id"], "survey_no_answer", {"source": "in_call"}
            )
        return row["number"]
