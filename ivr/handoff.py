"""The two-way ticket flow with the platforms we transfer to (issue 5).

When a transfer starts, a hand-off record (ticket number, category, address,
summary, the caller's number masked unless the target may see it) goes to the
target's MQTT topic ``<prefix>/<handoff_topic>`` at QoS 1. The target answers
with updates (accepted, dispatched, closed, with its own reference):

- over MQTT on ``<prefix>/<handoff_topic>/updates``, or
- over HTTP: ``POST /handoff/<target>/updates`` with headers
  ``X-Yht-Timestamp`` (Unix seconds) and ``X-Yht-Signature``
  (``sha256=`` + hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under the
  target's webhook secret).

An update is a JSON object ``{"id", "ticket", "status", "reference", "note"}``.
Each ``id`` is applied once per target: it is appended to the ticket's
timeline as ``handoff_update``; a duplicate changes nothing (and a replayed
webhook is refused with 409). Unsigned, badly signed or stale webhooks get 401.
MQTT updates are not signed: the broker's ACL decides who may publish them
(docs/transfers.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import time
from pathlib import Path

from ivr import log
from ivr.errors import HotlineError, TicketStoreError
from ivr.retry import STORE_RETRY_DELAYS, retry_store
from ivr.tickets import now_iso
from routing.transfer import Target

# A signed webhook older or newer than this is refused (seconds).
MAX_SKEW = 300
# Pauses (seconds) while a ticket cannot be read or written.
SEND_RETRY_DELAYS = STORE_RETRY_DELAYS
STATUSES = ("accepted", "dispatched", "arrived", "closed", "rejected", "note")
_ID = re.compile(r"[A-Za-z0-9._:-]{1,100}")

_TABLE = """
CREATE TABLE IF NOT EXISTS handoff_updates (
    target TEXT NOT NULL,
    update_id TEXT NOT NULL,
    ticket_id INTEGER NOT NULL,
    at TEXT NOT NULL,
    PRIMARY KEY (target, update_id)
)
"""


class HandoffError(HotlineError):
    """An update refused; ``status`` (400, 401, 404, 409) is for the webhook."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Yht-Signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def mask(number: str) -> str:
    return log.mask_number(number) if number else ""


def handoff_record(ticket: dict, target: Target, transfer_id: str) -> dict:
    """What the target receives: only the fields it may see."""
    record = {
        "ticket": ticket["number"],
        "transfer": transfer_id,
        "target": target.name,
        "arrived_at": ticket.get("arrived_at"),
        "desk": ticket.get("desk"),
        "caller_number": ticket.get("caller_number", "")
        if target.show_caller_number
        else mask(ticket.get("caller_number", "")),
        "sent_at": now_iso(),
    }
    for name in target.fields:
        record[name] = ticket.get(name) or ""
    return record


class Handoff:
    def __init__(self, store, bus, targets: tuple[Target, ...], base: Path) -> None:
        self.store = store
        self.bus = bus
        self.targets = {t.name: t for t in targets}
        self.base = base
        self._ready = False

    def subscribe(self) -> None:
        for target in self.targets.values():
            if target.handoff_topic:
                self.bus.subscribe(
                    f"{target.handoff_topic}/updates", self._mqtt_handler(target)
                )

    def _mqtt_handler(self, target: Target):
        async def handle(topic: str, data: dict) -> None:
            try:
                await self.apply(target.name, data, source="mqtt")
            except HandoffError as exc:
                log.tickets.warning(
                    "hand-off update from %s refused: %s", target.name, exc
                )

        return handle

    # -- outgoing -------------------------------------------------------------

    async def send(
        self, ticket_key: str, target_name: str, transfer_id: str
    ) -> dict | None:
        """Publish the hand-off record of a ticket to the target; the record."""
        target = self.targets[target_name]
        if not target.handoff_topic:
            return None
        # The ticket may not be readable yet: its opening waits in the journal
        # while the store fails (issue 8). Tried again, never dropped quietly.
        found: list[dict] = []

        async def read() -> None:
            ticket = await self.store.get(ticket_key, timeline=False)
            if ticket is None:
                raise TicketStoreError("no such ticket yet")
            found.append(ticket)

        what = f"hand-off to {target_name} of ticket {ticket_key}"
        if not await retry_store(read, what, SEND_RETRY_DELAYS):
            return None
        ticket = found[0]
        record = handoff_record(ticket, target, transfer_id)
        self.bus.publish("handoff.record", target.handoff_topic, record, qos=1)
        sent = {
            "target": target.name,
            "transfer": transfer_id,
            "topic": target.handoff_topic,
        }
        await retry_store(
            lambda: self.store.record(ticket["linkedid"], "handoff_sent", sent),
            f"ticket {ticket['number']}: hand-off to {target.name} sent",
            SEND_RETRY_DELAYS,
        )
        return record

    # -- incoming ---------------------------------------------------------------

    def secret(self, target: Target) -> bytes:
        # Read on every webhook (the file is small), not cached: a secret file
        # created or rotated while the server runs takes effect at once.
        value = ""
        if target.webhook_secret_env:
            value = os.environ.get(target.webhook_secret_env, "")
        if not value and target.webhook_secret_file:
            path = Path(target.webhook_secret_file)
            path = path if path.is_absolute() else self.base / path
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError:
                value = ""
        return value.encode()

    def verify(
        self, target_name: str, headers, body: bytes, now: float | None = None
    ) -> None:
        """Raise HandoffError(401) unless the webhook is signed, fresh and ours."""
        target = self.targets.get(target_name)
        if target is None:
            raise HandoffError(
                404, "no_such_target", f"no transfer target {target_name!r}"
            )
        secret = self.secret(target)
        if not secret:
            raise HandoffError(
                401, "no_secret", f"target {target_name!r} has no webhook secret set"
            )
        stamp = headers.get("X-Yht-Timestamp", "")
        given = headers.get("X-Yht-Signature", "")
        if not stamp or not given:
            raise HandoffError(
                401, "unsigned", "X-Yht-Timestamp and X-Yht-Signature needed"
            )
        try:
            sent = int(stamp)
        except ValueError:
            raise HandoffError(
                401, "bad_timestamp", f"X-Yht-Timestamp {stamp!r}"
            ) from None
        if abs((now or time.time()) - sent) > MAX_SKEW:
            raise HandoffError(
                401, "stale", f"X-Yht-Timestamp {stamp} is too old or new"
            )
        # compare_digest raises TypeError on non-ASCII str: compare bytes, and
        # a non-ASCII header is simply a bad signature.
        if not given.isascii() or not hmac.compare_digest(
            sign(secret, stamp, body).encode(), given.encode()
        ):
            raise HandoffError(401, "bad_signature", "the signature does not match")

    async def apply(self, target_name: str, data: dict, *, source: str) -> bool:
        """Append an update to its ticket; False if this id was applied before."""
        if target_name not in self.targets:
            raise HandoffError(
                404, "no_such_target", f"no transfer target {target_name!r}"
            )
        if not isinstance(data, dict):
            raise HandoffError(400, "bad_update", "an update is a JSON object")
        update_id = str(data.get("id", ""))
        if not _ID.fullmatch(update_id):
            raise HandoffError(400, "bad_update", f"update id {update_id!r}")
        status = str(data.get("status", ""))
        if status not in STATUSES:
            raise HandoffError(
                400, "bad_update", f"status {status!r}; known: {', '.join(STATUSES)}"
            )
        ticket = await self.store.ticket_row(str(data.get("ticket", "")))
        if ticket is None:
            raise HandoffError(
                404, "no_such_ticket", f"no ticket {data.get('ticket')!r}"
            )
        # A platform updates only the tickets handed off to it.
        sent = await self.store.fetchall(
            "SELECT data FROM ticket_events WHERE ticket_id = ? AND kind = ?",
            (ticket["id"], "handoff_sent"),
        )
        if not any(
            json.loads(row["data"]).get("target") == target_name for row in sent
        ):
            raise HandoffError(
                404,
                "not_handed_off",
                f"ticket {ticket['number']} was not handed off to {target_name}",
            )
        await self._ensure_table()
        entry = {
            "target": target_name,
            "update": update_id,
            "status": status,
            "reference": str(data.get("reference", ""))[:200],
            "note": str(data.get("note", ""))[:2000],
            "via": source,
        }
        async with self.store.transaction():
            changed = await self.store.execute(
                "INSERT INTO handoff_updates "
                "(target, update_id, ticket_id, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (target_name, update_id, ticket["id"], now_iso()),
            )
            if changed:
                await self.store.append_event(ticket["id"], "handoff_update", entry)
        if changed:
            self.bus.publish(
                "handoff.update",
                f"events/{ticket['linkedid']}",
                {"linkedid": ticket["linkedid"], "ticket": ticket["number"], **entry},
            )
        return bool(changed)

    async def _ensure_table(self) -> None:
        if not self._ready:
            async with self.store.transaction():
                await self.store.execute(_TABLE)
            self._ready = True


def webhook_body(update: dict) -> bytes:
    return json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode()
