"""Case 10: one key press is counted once, whatever way Asterisk reports it."""

from ivr.dtmf import DtmfDetector

CALLER = "PJSIP/trunk-00000040"
AGENT = "PJSIP/6001-00000041"


def ev(kind, digit="2", channel=CALLER, direction="Received", **extra):
    return {
        "Event": kind,
        "Channel": channel,
        "Digit": digit,
        "Direction": direction,
        **extra,
    }


def count(events):
    detector = DtmfDetector()
    return [d for event, at in events if (d := detector.feed(event, at)) is not None]


def test_a_begin_and_end_pair_is_one_press():
    assert count([(ev("DTMFBegin"), 0.0), (ev("DTMFEnd"), 0.12)]) == ["2"]


def test_legacy_asterisk11_events_are_one_press():
    events = [
        (ev("DTMF", Begin="Yes", End="No"), 0.0),
        (ev("DTMF", Begin="No", End="Yes"), 0.12),
    ]
    assert count(events) == ["2"]


def test_a_second_end_without_begin_within_40ms_is_the_same_press():
    events = [(ev("DTMFBegin"), 0.0), (ev("DTMFEnd"), 0.12), (ev("DTMFEnd"), 0.15)]
    assert count(events) == ["2"]


def test_the_bridged_peer_sent_copy_does_not_count():
    events = [
        (ev("DTMFBegin"), 0.0),
        (ev("DTMFBegin", channel=AGENT, direction="Sent"), 0.0),
        (ev("DTMFEnd"), 0.12),
        (ev("DTMFEnd", channel=AGENT, direction="Sent"), 0.12),
    ]
    assert count(events) == ["2"]


def test_a_fast_double_press_is_two_digits():
    events = [
        (ev("DTMFBegin"), 0.0),
        (ev("DTMFEnd"), 0.05),
        (ev("DTMFBegin"), 0.15),
        (ev("DTMFEnd"), 0.20),
    ]
    assert count(events) == ["2", "2"]


def test_a_late_end_without_begin_is_a_new_press():
    assert count([(ev("DTMFEnd"), 0.0), (ev("DTMFEnd"), 0.1)]) == ["2", "2"]


def test_channels_are_kept_apart():
    events = [(ev("DTMFEnd"), 0.0), (ev("DTMFEnd", channel="PJSIP/x-1"), 0.01)]
    assert count(events) == ["2", "2"]
