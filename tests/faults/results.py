"""The fault suite's table: one row a fault, every number measured.

- calls in flight: calls under way when the fault struck
- reached a person or clean end: answered by an agent, or (Asterisk killed,
  the calls die with it) their ticket closed as ``ended_by_system``
- tickets lost: calls without their one ticket; events lost: ``call.arrived``
  and ``call.ended`` events that never reached an MQTT subscriber
- longest silence: seconds from the fault (or, where the fault does not
  touch the menu, from the caller's key) until the caller was in a queue;
  an upper bound, since a prompt already playing plays on
- recovery: seconds from the fault until the server was serving again (for
  the broker, until the events were delivered; for the store, until the
  journal was applied)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEADERS = (
    "fault",
    "calls in flight",
    "reached a person or clean end",
    "tickets lost",
    "events lost",
    "longest silence (s)",
    "recovery (s)",
)


@dataclass(frozen=True)
class FaultRow:
    fault: str
    in_flight: int
    reached: int
    tickets_lost: int
    events_lost: int
    # None where the fault itself cuts the calls (Asterisk killed).
    longest_silence: float | None
    recovery: float

    def cells(self) -> tuple[str, ...]:
        return (
            self.fault,
            str(self.in_flight),
            str(self.reached),
            str(self.tickets_lost),
            str(self.events_lost),
            "n/a" if self.longest_silence is None else f"{self.longest_silence:.1f}",
            f"{self.recovery:.1f}",
        )


ROWS: list[FaultRow] = []


def table(rows: list[FaultRow]) -> str:
    lines = [HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADERS))]

    def render(cells: tuple[str, ...]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))

    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([render(HEADERS), rule, *(render(r.cells()) for r in rows)])


def write(rows: list[FaultRow], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(table(rows) + "\n", encoding="utf-8")
