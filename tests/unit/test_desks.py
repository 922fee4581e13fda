"""Agents' skills become queue membership with penalties."""

import pytest

from routing.desks import Membership, memberships

DESKS = ["general", "business", "psych", "tibetan", "yi"]


def test_level_one_is_penalty_zero_and_each_skill_is_a_queue():
    result = memberships([("6001", "Zhang", {"business": 1, "general": 3})], DESKS)
    assert result == [
        Membership("business", "PJSIP/6001", "Zhang", 0),
        Membership("general", "PJSIP/6001", "Zhang", 2),
    ]


def test_a_skill_for_an_unknown_desk_names_agent_and_desk():
    with pytest.raises(
        ValueError, match=r"agent 6001: skill for unknown desk 'police'"
    ):
        memberships([("6001", "Zhang", {"police": 1})], DESKS)


def test_levels_below_one_are_refused():
    with pytest.raises(ValueError, match="skill level 0"):
        memberships([("6001", "Zhang", {"general": 0})], DESKS)
