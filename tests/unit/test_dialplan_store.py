"""Dial plan versions on disk, the live plan, the file watcher, rollback."""

from __future__ import annotations

import asyncio
import json
import logging
import os

import pytest

from ivr.dialplan_live import LivePlan, PlanFileWatcher
from ivr.dialplan_store import (
    DialplanStore,
    NothingToRollBack,
    UnknownVersion,
    digest,
)
from ivr.errors import DialplanError
from routing.dialplan import parse_dialplan
from routing.menu import MenuWalk

PLAN = """\
name: test
version: 1
prompts:
  menu: {text: {zh: 请按键}}
desks:
  general: {name: 综合}
  business: {name: 营商环境}
  psych: {name: 心理援助}
start: {menu: main}
menus:
  main:
    prompt: menu
    keys:
      1: {queue: business}
"""
PSYCH = PLAN.replace("1: {queue: business}", "1: {queue: psych}")
BROKEN = PLAN.replace("1: {queue: business}", "1: {queue: nowhere}")


def key_one(plan) -> str:
    walk = MenuWalk(plan)
    walk.start()
    return walk.on_key("1").desk


@pytest.fixture
def store(tmp_path):
    return DialplanStore(tmp_path / "versions")


# --- the store --------------------------------------------------------------------


def test_publish_keeps_text_author_time_and_diff(store):
    first = store.publish(PLAN, "zhang", source="file")
    second = store.publish(PSYCH, "li")
    assert (first.created, second.created) == (True, True)
    v1, v2 = store.versions()
    assert (v1.number, v1.author, v1.source, v1.previous) == (1, "zhang", "file", None)
    assert (v2.number, v2.author, v2.source, v2.previous) == (2, "li", "api", 1)
    assert v2.sha256 == digest(PSYCH) and v2.summary == "1 menus, 3 desks"
    assert v2.published_at.endswith("Z")
    assert store.text(2) == PSYCH
    diff = store.diff(2)
    assert diff.startswith("--- v1\n+++ v2\n")
    assert "-      1: {queue: business}\n+      1: {queue: psych}\n" in diff
    assert store.diff(1).startswith("--- (nothing)\n+++ v1\n")
    # Plain files an admin can read without the server.
    names = sorted(os.listdir(store.folder))
    assert names == [f"00000{n}.{s}" for n in (1, 2) for s in ("diff", "json", "yaml")]
    assert json.loads((store.folder / "000002.json").read_text())["author"] == "li"


def test_an_invalid_plan_is_refused_and_nothing_stored(store):
    store.publish(PLAN, "zhang")
    with pytest.raises(DialplanError) as caught:
        store.publish(BROKEN, "li", filename="new.yaml")
    assert caught.value.problems == [
        "new.yaml:14:18: undefined desk 'nowhere' (defined: business, general, psych)"
    ]
    assert [v.number for v in store.versions()] == [1]


def test_publishing_the_live_text_again_stores_nothing(store):
    store.publish(PLAN, "zhang")
    again = store.publish(PLAN, "li")
    assert not again.created and again.version.number == 1


def test_rollback_is_a_new_version_and_walks_back(store):
    store.publish(PLAN, "a")
    store.publish(PSYCH, "b")
    third = PSYCH.replace("name: test", "name: third")
    store.publish(third, "c")
    back = store.rollback("d")
    assert (back.version.number, back.version.restores, back.version.source) == (
        4,
        2,
        "rollback",
    )
    assert store.text(4) == PSYCH
    # Rolling back a rollback goes one further back, like undo.
    assert store.rollback("d").version.restores == 1
    with pytest.raises(NothingToRollBack, match="version 1 is the first"):
        store.rollback("d")
    # Or straight to a named version.
    assert store.rollback("e", to=3).version.restores == 3
    with pytest.raises(NothingToRollBack, match="already"):
        store.rollback("e", to=3)
    with pytest.raises(UnknownVersion):
        store.rollback("e", to=99)


def test_nothing_to_roll_back_in_an_empty_store(store):
    with pytest.raises(NothingToRollBack):
        store.rollback("a")
    assert store.versions() == [] and store.latest() is None


def test_a_half_written_version_is_not_a_version(store):
    store.publish(PLAN, "a")
    (store.folder / "000002.yaml").write_text(PSYCH)  # a crash before the .json
    assert [v.number for v in store.versions()] == [1]
    assert store.publish(PSYCH, "b").version.number == 2


@pytest.mark.parametrize("author", ["", "   ", "a\nb", "x" * 101])
def test_authors_are_checked(store, author):
    with pytest.raises(ValueError, match="author"):
        store.publish(PLAN, author)


# --- the live plan ----------------------------------------------------------------


async def test_live_plan_publish_and_rollback_tell_the_server(store):
    seen = []
    live = LivePlan(store, parse_dialplan(PLAN), lambda plan, v: seen.append(v.number))
    await live.open(PLAN, "plan.yaml")
    walk_before = MenuWalk(live.plan)  # a call in the menu now
    walk_before.start()
    await live.publish(PSYCH, "li")
    assert key_one(live.plan) == "psych"
    assert walk_before.on_key("1").desk == "business"  # finishes on its version
    with pytest.raises(DialplanError):
        await live.publish(BROKEN, "li")
    assert live.version.number == 2 and key_one(live.plan) == "psych"
    await live.rollback("wang")
    assert key_one(live.plan) == "business"
    assert seen == [1, 2, 3]


async def test_open_reconciles_the_file_with_the_store(store, caplog):
    live = LivePlan(store, parse_dialplan(PLAN))
    assert (await live.open(PLAN, "plan.yaml")).number == 1
    await live.publish(PSYCH, "li")  # over the API

    # A restart with the file unchanged keeps what the API published.
    restarted = LivePlan(store, parse_dialplan(PLAN))
    assert (await restarted.open(PLAN, "plan.yaml")).number == 2
    assert key_one(restarted.plan) == "psych"

    # A file edited while the server was down wins, with a warning.
    edited = PLAN.replace("name: test", "name: edited")
    again = LivePlan(store, parse_dialplan(edited))
    with caplog.at_level(logging.WARNING, "yihaotong.routing"):
        version = await again.open(edited, "plan.yaml")
    assert (version.number, version.source, version.author) == (
        3,
        "file",
        "file plan.yaml",
    )
    assert "plan.yaml changed while the server was down" in caplog.text


# --- the file watcher -------------------------------------------------------------


async def test_watcher_publishes_an_edited_file_and_refuses_a_broken_one(
    tmp_path, store, caplog
):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN, encoding="utf-8")
    live = LivePlan(store, parse_dialplan(PLAN))
    await live.open(PLAN, str(path))
    watcher = PlanFileWatcher(path, lambda t: live.publish_file(t, str(path)))

    assert not await watcher.check()  # unchanged
    path.write_text(PSYCH, encoding="utf-8")
    os.utime(path, ns=(1, 2_000_000_000))  # a new mtime, however fast the test
    assert await watcher.check()
    assert key_one(live.plan) == "psych" and live.version.source == "file"

    path.write_text(BROKEN, encoding="utf-8")
    os.utime(path, ns=(1, 3_000_000_000))
    with caplog.at_level(logging.WARNING, "yihaotong.routing"):
        assert await watcher.check()
    assert live.version.number == 2 and key_one(live.plan) == "psych"
    assert "refused, v2 keeps serving; 1 problems" in caplog.text
    assert "plan.yaml:14:18: undefined desk 'nowhere'" in caplog.text

    path.unlink()
    assert not await watcher.check()
    assert "is gone; the live plan keeps serving" in caplog.text


async def test_watcher_polls_on_its_own(tmp_path, store):
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN, encoding="utf-8")
    changed = asyncio.Event()
    live = LivePlan(store, parse_dialplan(PLAN), lambda plan, v: changed.set())
    await live.open(PLAN, str(path))
    changed.clear()
    watcher = PlanFileWatcher(
        path, lambda t: live.publish_file(t, str(path)), interval=0.02
    )
    task = asyncio.create_task(watcher.run())
    try:
        path.write_text(PSYCH, encoding="utf-8")
        os.utime(path, ns=(1, 5_000_000_000))
        await asyncio.wait_for(changed.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert live.version.number == 2 and key_one(live.plan) == "psych"
