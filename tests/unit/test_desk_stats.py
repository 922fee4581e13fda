"""Desk statistics: the GB/T 33358-2016 figures (routing.desk_stats)."""

from __future__ import annotations

import pytest

from routing.desk_stats import WINDOW, DeskStats, Offered, from_ticket


def test_waiting_callers_and_the_longest_wait_count_the_queue_they_are_in():
    stats = DeskStats()
    stats.queued("a", "tibetan", "tibetan", 100.0)
    stats.queued("b", "tibetan", "tibetan", 110.0)
    stats.queued("a", "tibetan", "general", 130.0)  # moved by overflow
    tibetan = stats.snapshot("tibetan", "tibetan", 140.0)
    general = stats.snapshot("general", "general", 140.0)
    assert (tibetan["waiting"], tibetan["longest_wait"]) == (1, 30.0)
    assert (general["waiting"], general["longest_wait"]) == (1, 40.0)
    # Rates belong to the desk the call first queued at: nothing decided yet,
    # but both waited past 15 s, so the 15 s rate is already 0.
    assert tibetan["answered_15s_rate"] == 0.0
    assert tibetan["connected_24h_rate"] is None and tibetan["meets_standard"] is None
    assert general["answered_15s_rate"] is None


def test_rates_over_decided_calls():
    stats = DeskStats()
    for i, (outcome, after) in enumerate(
        [("answered", 5), ("answered", 14), ("answered", 40), ("abandoned", 20),
         ("callback", 90)]
    ):  # fmt: skip
        stats.queued(str(i), "general", "general", 1000.0)
        stats.decided(str(i), outcome, 1000.0 + after)
    figures = stats.snapshot("general", "general", 2000.0, {"available": 2})
    assert figures["offered_24h"] == 5
    assert figures["answered_24h"] == 3 and figures["abandoned_24h"] == 1
    assert figures["callbacks_24h"] == 1
    assert figures["answered_15s_rate"] == 0.4
    assert figures["abandon_rate"] == 0.2
    assert figures["connected_24h_rate"] == 0.6
    assert figures["meets_standard"] is False
    assert figures["agents"] == {"available": 2}
    assert figures["waiting"] == 0


def test_a_call_is_decided_once_and_unknown_outcomes_are_refused():
    stats = DeskStats()
    stats.queued("a", "yi", "yi", 0.0)
    stats.decided("a", "answered", 3.0)
    stats.decided("a", "abandoned", 9.0)
    stats.decided("nobody", "answered", 9.0)
    assert stats.calls["a"].outcome == "answered" and stats.calls["a"].waited == 3.0
    with pytest.raises(ValueError, match="unknown outcome"):
        stats.decided("a", "hung up", 1.0)


def test_after_a_restart_callers_no_longer_in_a_queue_are_lost():
    stats = DeskStats()
    stats.queued("a", "yi", "yi", 0.0)
    stats.queued("b", "yi", "yi", 0.0)
    stats.still_waiting(["b"], 30.0)
    figures = stats.snapshot("yi", "yi", 30.0)
    assert figures["waiting"] == 1 and figures["offered_24h"] == 1
    assert figures["connected_24h_rate"] == 0.0


def test_the_window_is_24_hours_rolling():
    stats = DeskStats()
    stats.queued("old", "general", "general", 0.0)
    stats.decided("old", "answered", 1.0)
    stats.queued("new", "general", "general", WINDOW)
    stats.decided("new", "abandoned", WINDOW + 1)
    figures = stats.snapshot("general", "general", WINDOW + 10)
    assert figures["offered_24h"] == 1 and figures["abandon_rate"] == 1.0
    stats.expire(WINDOW + 10)
    assert list(stats.calls) == ["new"]


def test_tickets_seed_the_window():
    def epoch(text):
        return {"t1": 500.0}.get(text)

    ticket = {
        "linkedid": "L1",
        "status": "closed",
        "outcome": "abandoned_in_queue",
        "desk": "tibetan",
        "queue": "general",
        "queue_entered_at": "t1",
        "queue_wait": 42.0,
    }
    assert from_ticket(ticket, epoch) == Offered(
        "L1", "tibetan", 500.0, "general", "abandoned", 42.0
    )
    assert from_ticket({**ticket, "queue_entered_at": None}, epoch) is None
    assert from_ticket({**ticket, "outcome": "abandoned_in_menu"}, epoch) is None
