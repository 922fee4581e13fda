"""One bench run: both arms, their phases, the micro-benchmarks, the report.

For each arm: the fixed offered load (throughput, latency, CPU per call, AMI
events and ticket writes per second), then a step-up of the rate and of the
concurrency, each stopping at its first step with a failed call. Arm A also
checks that every call left exactly one closed ticket with the right desk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from ivr import log
from ivr.bench import report
from ivr.bench.calls import BenchCall, CallWatcher, LoadGenerator, MenuKeys
from ivr.bench.micro import run_micro
from ivr.bench.proc import CpuMeter, load_average, machine_facts
from ivr.bench.settings import BenchSettings, Phase
from ivr.bench.stack import REPO, BenchStack
from ivr.errors import HotlineError

TICKET_WAIT = 30.0  # s for the server to close the last tickets of a phase


async def run_bench(
    settings: BenchSettings,
    *,
    out_dir: Path = REPO / "bench",
    docs: Path | None = REPO / "docs" / "performance.md",
    data_dir: Path = REPO / "var" / "bench",
    command: str = "make bench",
    micro: bool = True,
) -> dict:
    """Run the bench; write results.json, results.png and ``docs``."""
    began = datetime.now(UTC)
    results: dict = {
        "started_at": began.isoformat(timespec="seconds"),
        "command": command,
        "preset": settings.name,
        "machine": machine_facts(),
        "load_average_before": load_average(),
        "settings": asdict(settings),
        "arms": {},
    }
    async with BenchStack(settings, data_dir) as stack:
        results["versions"] = await report.versions(stack)
        watcher = CallWatcher(stack.session)
        load = LoadGenerator(
            stack.session,
            watcher,
            settings.caller,
            MenuKeys.of(stack.plan),
            silent=settings.silent_callers,
        )
        for arm in settings.arms:
            log.demo.info("bench: arm %s", arm)
            results["arms"][arm] = await _run_arm(stack, load, watcher, arm)
    if micro:
        log.demo.info("bench: micro-benchmarks")
        results["micro"] = await run_micro(
            settings.micro_stream_bytes, settings.micro_tickets
        )
    results["load_average_after"] = load_average()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["comparison"] = report.compare(results)
    report.write(results, out_dir, docs)
    return results


async def _run_arm(
    stack: BenchStack, load: LoadGenerator, watcher: CallWatcher, arm: str
) -> dict:
    settings = stack.settings
    if arm == "A":
        await stack.start_server()
    try:
        fixed = await _run_phase(stack, load, watcher, settings.fixed, arm)
        phases = [fixed]
        passed = [fixed] if not fixed["failed"] else []
        # Up from the fixed load while nothing fails, or down until nothing does.
        for phase in settings.steps if passed else settings.steps_down:
            result = await _run_phase(stack, load, watcher, phase, arm)
            phases.append(result)
            if passed and result["failed"]:
                break
            if not result["failed"]:
                passed.append(result)
                if phase in settings.steps_down:
                    break
        holds = []
        for calls in settings.concurrency:
            phase = settings.concurrency_phase(calls)
            result = await _run_phase(stack, load, watcher, phase, arm)
            holds.append(result)
            if result["failed"]:
                break
    finally:
        if arm == "A":
            await stack.stop_server()
    held = [h for h in holds if not h["failed"]]
    return {
        "fixed": fixed,
        "steps": phases,
        "concurrency": holds,
        "max_sustained_rate": max((p["offered_rate"] for p in passed), default=0.0),
        "max_sustained_throughput": max(
            (p["throughput_cps"] for p in passed), default=0.0
        ),
        "max_concurrent_held": max((h["peak_concurrent"] for h in held), default=0),
        "max_concurrent_step_passed": max((h["calls"] for h in held), default=0),
    }


async def _run_phase(
    stack: BenchStack,
    load: LoadGenerator,
    watcher: CallWatcher,
    phase: Phase,
    arm: str,
) -> dict:
    left = await stack.wait_idle(30)
    if left:
        log.demo.warning("bench: %d channels still up before %s", left, phase.name)
    log.demo.info(
        "bench: arm %s, %s: %d calls at %.0f/s, talk %.1f s",
        arm,
        phase.name,
        phase.calls,
        phase.rate,
        phase.talk,
    )
    server_pid = stack.server.pid if stack.server is not None else None
    meter = CpuMeter(
        {
            "asterisk": stack.pbx.pid,
            "server": server_pid,
            "broker": stack.broker._proc.pid if stack.broker._proc else None,
            "bench": os.getpid(),
        }
    )
    before = await stack.server_stats() if arm == "A" else None
    load_before = load_average()
    watcher.reset_peak()
    cpu_start = meter.sample()
    calls, originated_until, finished = await load.run(phase, arm)
    if any(c.ended is None for c in calls):
        await stack.hang_up_callers()
    verdicts = {call.id: call.verdict(load.menu) for call in calls}
    tickets: dict = {}
    if arm == "A":
        failed = {i for i, why in verdicts.items() if why}
        tickets = await _check_tickets(stack.store_path, calls, failed)
    cpu_end = meter.sample()
    after = await stack.server_stats() if arm == "A" else None

    failures: Counter = Counter()
    completed = []
    for call in calls:
        why = verdicts[call.id] or tickets.get(call.id, "")
        if why:
            failures[why] += 1
        else:
            completed.append(call)
    started = min(c.sent for c in calls)
    result = report.phase_result(
        phase,
        arm,
        calls,
        completed,
        failures,
        started=started,
        originated_until=originated_until,
        finished=finished,
        peak=watcher.peak,
        cpu=CpuMeter.delta(cpu_start, cpu_end),
        server=(before, after),
        tickets=tickets,
    )
    result["load_average"] = [load_before, load_average()]
    log.demo.info(
        "bench: arm %s, %s: %d/%d completed, %.1f calls/s, key->prompt p99 %s ms,"
        " peak %d up%s",
        arm,
        phase.name,
        len(completed),
        phase.calls,
        result["throughput_cps"],
        result["latency_ms"]["key_to_prompt"].get("p99"),
        result["peak_concurrent"],
        f", FAILED: {result['failures']}" if result["failed"] else "",
    )
    return result


async def _check_tickets(
    path: Path, calls: list[BenchCall], failed: set[int]
) -> dict[int, str]:
    """Per call, what is wrong with its ticket (nothing: not listed).

    Every call needs exactly one closed ticket; one that went as scripted
    also needs outcome ``answered`` and the desk of its key (a failed call's
    ticket rightly tells another story). Waits for the server's last writes:
    a ticket closes after its hangup.
    """
    by_channel = {c.channel: c for c in calls if c.channel}
    deadline = time.monotonic() + TICKET_WAIT
    while True:
        problems = await asyncio.to_thread(_ticket_problems, path, by_channel, failed)
        waiting = {"ticket missing", "ticket still open"} & set(problems.values())
        if not waiting or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    for call in calls:
        if not call.channel and not call.error:
            problems[call.id] = "ticket missing (the call never arrived)"
    return problems


def _ticket_problems(
    path: Path, by_channel: dict[str, BenchCall], failed: set[int]
) -> dict[int, str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        rows = db.execute(
            "SELECT channel, status, outcome, desk, queue FROM tickets"
        ).fetchall()
    finally:
        db.close()
    count: Counter = Counter()
    found: dict[str, tuple] = {}
    for channel, *fields in rows:
        if channel in by_channel:
            count[channel] += 1
            found[channel] = tuple(fields)
    problems = {}
    for channel, call in by_channel.items():
        if channel not in found:
            problems[call.id] = "ticket missing"
            continue
        status, outcome, desk, queue = found[channel]
        if count[channel] > 1:
            problems[call.id] = "ticket duplicated"
        elif status != "closed":
            problems[call.id] = "ticket still open"
        elif call.id in failed:
            continue  # the call failed already; its ticket says how
        elif outcome != "answered":
            problems[call.id] = f"ticket outcome {outcome}"
        elif (desk, queue) != (call.desk, call.queue):
            problems[call.id] = f"ticket desk {desk}/{queue}"
    return problems


async def main_bench(args) -> int:
    """``hotline bench``: 0 once the outputs are written (targets met or not).

    With ``--strict``, 1 when a target of issue 7 was missed.
    """
    from dataclasses import replace

    from ivr.bench.settings import PRESETS

    arms = tuple(a.strip().upper() for a in args.arms.split(",") if a.strip())
    settings = replace(
        PRESETS[args.preset],
        arms=arms,
        silent_callers=args.silent_callers,
        server_nice=args.server_nice,
        proposals=_proposals(args.proposals),
    )
    options = [
        f"--{name.replace('_', '-')}"
        for name in ("silent_callers",)
        if getattr(args, name)
    ]
    if args.proposals:
        options.append(f"--proposals={args.proposals}")
    if args.server_nice:
        options.append(f"--server-nice={args.server_nice}")
    if args.arms != "A,B":
        options.append(f"--arms={args.arms}")
    results = await run_bench(
        settings,
        out_dir=Path(args.out),
        docs=Path(args.docs) if args.docs else None,
        command=" ".join(["hotline bench --preset", args.preset, *options]),
        micro=not args.no_micro,
    )
    print(report.summary(results))
    missed = [t for t in results["comparison"]["targets"] if not t["met"]]
    return 1 if missed and args.strict else 0


def _proposals(text: str) -> tuple[str, ...]:
    from ivr.bench.proposals import PATCHES

    names = list(PATCHES) if text == "all" else [n for n in text.split(",") if n]
    unknown = set(names) - set(PATCHES)
    if unknown:
        raise HotlineError(
            f"unknown proposals {sorted(unknown)}: choose from {', '.join(PATCHES)}"
        )
    return tuple(names)
