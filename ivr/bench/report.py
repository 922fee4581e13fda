"""The bench's outputs: results.json, results.png and the numbers in performance.md.

``docs/performance.md`` keeps its hand-written analysis: a run replaces only
the part between the ``bench:begin`` and ``bench:end`` markers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
from collections import Counter
from importlib import metadata
from pathlib import Path

from ivr.bench.calls import BenchCall
from ivr.bench.settings import Phase

REPO = Path(__file__).resolve().parents[2]
BEGIN = "<!-- bench:begin (written by `hotline bench`; edit outside the markers) -->"
END = "<!-- bench:end -->"
LATENCIES = ("key_to_prompt", "key_to_queue", "answer_to_greeting")

# Issue 7's targets for arm A, on 2 cores.
TARGET_RATE = 20.0
TARGET_CONCURRENT = 200
TARGET_THROUGHPUT_RATIO = 0.8
TARGET_P99_GAP_MS = 100.0


async def versions(stack) -> dict:
    text = await stack.pbx.cli("core show version")
    try:
        ours = metadata.version("yihaotong")
    except metadata.PackageNotFoundError:
        ours = "unknown"
    commit = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        proc = await asyncio.create_subprocess_exec(
            "git",
            "describe",
            "--always",
            "--dirty",
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        out, _ = await proc.communicate()
        commit = out.decode().strip()
    return {
        "python": sys.version.split()[0],
        "asterisk": text.strip().splitlines()[0] if text.strip() else "unknown",
        "yihaotong": ours,
        "commit": commit,
    }


def percentiles(values: list[float]) -> dict:
    """p50/p95/p99 (nearest rank), mean and max in ms; {} without values."""
    if not values:
        return {}
    ordered = sorted(values)

    def rank(p: float) -> float:
        index = max(0, math.ceil(p / 100 * len(ordered)) - 1)
        return round(ordered[index] * 1000, 1)

    return {
        "n": len(ordered),
        "p50": rank(50),
        "p95": rank(95),
        "p99": rank(99),
        "max": round(ordered[-1] * 1000, 1),
        "mean": round(sum(ordered) / len(ordered) * 1000, 1),
    }


def phase_result(
    phase: Phase,
    arm: str,
    calls: list[BenchCall],
    completed: list[BenchCall],
    failures: Counter,
    *,
    started: float,
    originated_until: float,
    finished: float,
    peak: int,
    cpu: dict,
    server: tuple[dict | None, dict | None],
    tickets: dict[int, str],
) -> dict:
    ends = sorted(c.ended for c in completed if c.ended is not None)
    span = ends[-1] - ends[0] if len(ends) > 1 else 0.0
    duration = finished - started
    done = len(completed)
    done_ids = {c.id for c in completed}
    result = {
        "name": phase.name,
        "arm": arm,
        "offered_rate": phase.rate,
        "talk_s": round(phase.talk, 2),
        "calls": phase.calls,
        "originated": len(calls),
        "completed": done,
        "failed": len(calls) - done + (phase.calls - len(calls)),
        "failures": dict(failures.most_common())
        | (
            {"not originated (calls piled up)": phase.calls - len(calls)}
            if len(calls) < phase.calls
            else {}
        ),
        "duration_s": round(duration, 2),
        "originate_window_s": round(originated_until - started, 2),
        # Completions per second while they came: (n - 1) intervals.
        "throughput_cps": round((len(ends) - 1) / span, 2) if span else 0.0,
        "peak_concurrent": peak,
        "latency_ms": {
            name: percentiles([v for c in calls if (v := getattr(c, name)) is not None])
            for name in LATENCIES
        },
        # A few failed calls as they went, to see how a step failed.
        "failed_examples": [
            {"call": c.id, "key": c.key, "timeline": c.timeline()}
            for c in [c for c in calls if c.id not in done_ids][:3]
        ],
        "cpu_s": cpu,
        "cpu_ms_per_call": {
            name: round(cpu[name] / done * 1000, 2) if done else None
            for name in ("asterisk", "server", "broker", "bench")
        },
    }
    before, after = server
    if before and after:
        events = after["ami_events"] - before["ami_events"]
        writes = after["ticket_writes"] - before["ticket_writes"]
        result["server"] = {
            "ami_events": events,
            "ami_events_per_s": round(events / duration, 1),
            "ami_events_per_call": round(events / len(calls), 1),
            "ticket_writes": writes,
            "ticket_writes_per_s": round(writes / duration, 1),
            "ticket_writes_per_call": round(writes / len(calls), 1),
            "mqtt_published": after["mqtt_published"] - before["mqtt_published"],
            "mqtt_pending_after": after["mqtt_pending"],
        }
        result["tickets"] = {
            "checked": len(calls),
            "problems": len(tickets),
            "lost": sum(1 for p in tickets.values() if "missing" in p),
        }
    return result


def compare(results: dict) -> dict:
    arms = results["arms"]
    a, b = arms.get("A"), arms.get("B")
    out: dict = {}
    if a and b:
        out["max_sustained_rate"] = _pair(
            a["max_sustained_rate"], b["max_sustained_rate"]
        )
        out["fixed_throughput_cps"] = _pair(
            a["fixed"]["throughput_cps"], b["fixed"]["throughput_cps"]
        )
        out["max_concurrent_held"] = _pair(
            a["max_concurrent_held"], b["max_concurrent_held"]
        )
        for name in LATENCIES:
            pa = a["fixed"]["latency_ms"][name].get("p99")
            pb = b["fixed"]["latency_ms"][name].get("p99")
            entry = _pair(pa, pb)
            if pa is not None and pb is not None:
                entry["a_minus_b_ms"] = round(pa - pb, 1)
            out[f"{name}_p99_ms"] = entry
        out["asterisk_cpu_ms_per_call"] = _pair(
            a["fixed"]["cpu_ms_per_call"]["asterisk"],
            b["fixed"]["cpu_ms_per_call"]["asterisk"],
        )
        out["total_cpu_ms_per_call"] = _pair(_total_cpu(a), _total_cpu(b))
    out["targets"] = targets(a, b)
    return out


def _total_cpu(arm: dict) -> float | None:
    per_call = arm["fixed"]["cpu_ms_per_call"]
    values = [per_call[k] for k in ("asterisk", "server", "broker")]
    return round(sum(v or 0 for v in values), 2) if per_call["asterisk"] else None


def _pair(a, b) -> dict:
    ratio = round(a / b, 3) if a is not None and b else None
    return {"A": a, "B": b, "A_over_B": ratio}


def targets(a: dict | None, b: dict | None) -> list[dict]:
    if a is None:
        return []
    fixed = a["fixed"]
    problems = sum(
        p.get("tickets", {}).get("problems", 0) for p in a["steps"] + a["concurrency"]
    )
    rows = [
        {
            "target": f"arm A sustains >= {TARGET_RATE:.0f} calls/s, no failed call, "
            "no lost ticket",
            "measured": f"{a['max_sustained_rate']:.0f} calls/s "
            f"({problems} ticket problems over all phases)",
            "met": a["max_sustained_rate"] >= TARGET_RATE,
        },
        {
            "target": f"arm A holds >= {TARGET_CONCURRENT} concurrent calls, "
            "no failed call",
            "measured": f"{a['max_concurrent_held']} held "
            f"(step of {a['max_concurrent_step_passed']} calls passed)",
            "met": a["max_concurrent_held"] >= TARGET_CONCURRENT,
        },
    ]
    if b is not None:
        rate_a, rate_b = a["max_sustained_rate"], b["max_sustained_rate"]
        thr_a, thr_b = fixed["throughput_cps"], b["fixed"]["throughput_cps"]
        ratio = min(rate_a / rate_b if rate_b else 0, thr_a / thr_b if thr_b else 0)
        rows.append(
            {
                "target": f"arm A throughput >= {TARGET_THROUGHPUT_RATIO} x arm B",
                "measured": f"max rate {rate_a:.0f}/{rate_b:.0f}, fixed load "
                f"{thr_a:.1f}/{thr_b:.1f} calls/s: {ratio:.2f}",
                "met": ratio >= TARGET_THROUGHPUT_RATIO,
            }
        )
        pa = fixed["latency_ms"]["key_to_prompt"].get("p99")
        pb = b["fixed"]["latency_ms"]["key_to_prompt"].get("p99")
        if pa is not None and pb is not None:
            rows.append(
                {
                    "target": "arm A key-to-prompt p99 within "
                    f"{TARGET_P99_GAP_MS:.0f} ms of arm B",
                    "measured": f"{pa:.0f} ms vs {pb:.0f} ms: +{pa - pb:.0f} ms",
                    "met": pa - pb <= TARGET_P99_GAP_MS,
                }
            )
    server = fixed["cpu_ms_per_call"]["server"]
    asterisk = fixed["cpu_ms_per_call"]["asterisk"]
    if server is not None and asterisk is not None:
        rows.append(
            {
                "target": "the server uses less CPU per call than Asterisk",
                "measured": f"server {server:.1f} ms, Asterisk {asterisk:.1f} ms "
                "per call",
                "met": server < asterisk,
            }
        )
    return rows


# --- files ---------------------------------------------------------------------


def write(results: dict, out_dir: Path, docs: Path | None) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps(results, indent=1, ensure_ascii=False) + "\n"
    )
    chart(results, out_dir / "results.png")
    if docs is not None:
        update_docs(docs, summary(results))


def chart(results: dict, path: Path) -> None:
    # The Agg canvas directly: no pyplot and its global state (as ivr/report.py).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    arms = results["arms"]
    colours = {"A": "#c0392b", "B": "#2c3e50"}
    labels = {"A": "A: server (AsyncAGI)", "B": "B: native dialplan"}
    fig = Figure(figsize=(15, 4.8))
    FigureCanvasAgg(fig)
    ax_rate, ax_lat, ax_cpu = fig.subplots(1, 3)

    top = 5.0
    for arm, data in arms.items():
        phases = sorted(data["steps"], key=lambda p: p["offered_rate"])
        xs = [p["offered_rate"] for p in phases]
        ys = [p["throughput_cps"] for p in phases]
        ax_rate.plot(xs, ys, "o-", color=colours[arm], label=labels[arm])
        for p in phases:
            if p["failed"]:
                ax_rate.plot(
                    p["offered_rate"], p["throughput_cps"], "x", color="black", ms=10
                )
        top = max([top, *xs, *ys])
    ax_rate.plot([0, top], [0, top], ":", color="grey", lw=1, label="offered")
    ax_rate.set(
        xlabel="offered calls/s",
        ylabel="completed calls/s",
        title="Throughput (x: a step with failed calls)",
        xlim=(0, top * 1.05),
        ylim=(0, top * 1.05),
    )
    ax_rate.legend(loc="upper left", fontsize=8)

    for arm, data in arms.items():
        phases = sorted(data["steps"], key=lambda p: p["offered_rate"])
        xs = [p["offered_rate"] for p in phases]
        for name, style in (("key_to_prompt", "o-"), ("key_to_queue", "s--")):
            ys = [max(p["latency_ms"][name].get("p99", 0), 0.5) for p in phases]
            ax_lat.plot(
                xs,
                ys,
                style,
                color=colours[arm],
                label=f"{arm}: {name.replace('_', ' ')} p99",
            )
    ax_lat.set_yscale("log")
    ax_lat.set(
        xlabel="offered calls/s",
        ylabel="ms (log)",
        title="Latency p99 per step",
        xlim=(0, top * 1.05),
    )
    ax_lat.legend(fontsize=8)

    fixed_rate = next(iter(arms.values()))["fixed"]["offered_rate"] if arms else 0
    parts = ("asterisk", "server", "broker")
    bottom = [0.0] * len(arms)
    shades = {"asterisk": "#7f8c8d", "server": "#c0392b", "broker": "#e67e22"}
    for part in parts:
        values = [
            data["fixed"]["cpu_ms_per_call"].get(part) or 0 for data in arms.values()
        ]
        ax_cpu.bar(
            list(arms), values, 0.5, bottom=bottom, color=shades[part], label=part
        )
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax_cpu.set(
        ylabel="CPU ms per call",
        title=f"CPU per completed call at {fixed_rate:.0f} calls/s",
    )
    ax_cpu.legend(fontsize=8)

    facts = results["machine"]
    others = ", ".join(
        f"{arm} {_share(data['fixed']['cpu_s'])}" for arm, data in arms.items()
    )
    fig.suptitle(
        f"yihaotong bench ({results['preset']}): {facts['cores']} cores, "
        f"{facts['cpu_model']}; CPU taken by other work during the fixed load: "
        f"{others}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _share(cpu: dict) -> str:
    total = cpu.get("machine_total") or 0
    return f"{cpu['others'] / total:.0%}" if total else "?"


def update_docs(path: Path, block: str) -> None:
    text = path.read_text() if path.exists() else DOC_SKELETON
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + "\n\n" + BEGIN + "\n" + END + "\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + BEGIN + "\n" + block.strip("\n") + "\n" + END + tail)


DOC_SKELETON = f"""# Performance

{BEGIN}
{END}
"""


def _ms(stats: dict, key: str) -> str:
    value = stats.get(key)
    return "-" if value is None else f"{value:.0f}"


def summary(results: dict) -> str:
    """The generated part of docs/performance.md."""
    machine, versions_ = results["machine"], results.get("versions", {})
    lines = [
        f"Run of {results['started_at']} to {results['finished_at']} "
        f"(preset `{results['preset']}`), produced by `{results['command']}`.",
        "",
        f"- Machine: {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['cpu_model']}, Linux {machine['kernel']}",
        f"- Versions: Python {versions_.get('python')}, "
        f"{versions_.get('asterisk')}, yihaotong {versions_.get('yihaotong')} "
        f"({versions_.get('commit') or 'no git'})",
        f"- Load average before/after: {results['load_average_before']} / "
        f"{results['load_average_after']}",
        "",
        "| | arm A (server) | arm B (native) | A/B |",
        "| --- | --- | --- | --- |",
    ]
    arms, comp = results["arms"], results.get("comparison", {})

    def row(label: str, fn, ratio_key: str | None = None) -> None:
        values = [fn(arms[a]) if a in arms else "-" for a in ("A", "B")]
        ratio = comp.get(ratio_key, {}).get("A_over_B") if ratio_key else None
        lines.append(
            f"| {label} | {values[0]} | {values[1]} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} |"
        )

    fixed_rate = next(iter(arms.values()))["fixed"]["offered_rate"] if arms else 0
    row(
        f"completed calls/s at {fixed_rate:.0f}/s offered",
        lambda a: (
            f"{a['fixed']['throughput_cps']:.1f} "
            f"({a['fixed']['completed']}/{a['fixed']['calls']})"
        ),
        "fixed_throughput_cps",
    )
    row(
        "highest rate with no failed call",
        lambda a: f"{a['max_sustained_rate']:.0f}/s",
        "max_sustained_rate",
    )
    row(
        "most concurrent calls held, no failure",
        lambda a: str(a["max_concurrent_held"]),
        "max_concurrent_held",
    )
    for name in LATENCIES:
        row(
            f"{name.replace('_', ' ')} p50 / p95 / p99 ms",
            lambda a, n=name: " / ".join(
                _ms(a["fixed"]["latency_ms"][n], q) for q in ("p50", "p95", "p99")
            ),
            f"{name}_p99_ms",
        )
    row(
        "CPU ms per call: Asterisk",
        lambda a: _ms(a["fixed"]["cpu_ms_per_call"], "asterisk"),
        "asterisk_cpu_ms_per_call",
    )
    row(
        "CPU ms per call: server / broker",
        lambda a: (
            f"{_ms(a['fixed']['cpu_ms_per_call'], 'server')} / "
            f"{_ms(a['fixed']['cpu_ms_per_call'], 'broker')}"
        ),
    )
    row(
        "AMI events/s handled by the server (per call)",
        lambda a: (
            f"{a['fixed']['server']['ami_events_per_s']:.0f} "
            f"({a['fixed']['server']['ami_events_per_call']:.0f})"
            if "server" in a["fixed"]
            else "-"
        ),
    )
    row(
        "ticket writes/s (per call)",
        lambda a: (
            f"{a['fixed']['server']['ticket_writes_per_s']:.0f} "
            f"({a['fixed']['server']['ticket_writes_per_call']:.0f})"
            if "server" in a["fixed"]
            else "-"
        ),
    )
    row(
        "failed calls / ticket problems (all phases)",
        lambda a: f"{_all_failed(a)} / {_all_ticket_problems(a)}",
    )
    row(
        "CPU of other work during the fixed load (s)",
        lambda a: (
            f"{a['fixed']['cpu_s']['others']:.1f} of "
            f"{a['fixed']['cpu_s']['machine_total']:.0f} "
            f"({_share(a['fixed']['cpu_s'])})"
        ),
    )

    lines += ["", "Steps (offered -> completed calls/s, failures):", ""]
    for arm, data in arms.items():
        steps = ", ".join(
            f"{p['offered_rate']:.0f}->{p['throughput_cps']:.1f}"
            + (
                f" ({p['failed']} failed: {_first(p['failures'])})"
                if p["failed"]
                else ""
            )
            for p in data["steps"]
        )
        holds = ", ".join(
            f"{h['calls']} calls (peak {h['peak_concurrent']} up)"
            + (f" {h['failed']} failed: {_first(h['failures'])}" if h["failed"] else "")
            for h in data["concurrency"]
        )
        lines.append(f"- arm {arm}: {steps or '-'}; concurrency: {holds or '-'}")

    targets_ = comp.get("targets", [])
    if targets_:
        lines += [
            "",
            "| target (arm A, issue 7) | measured | met |",
            "| --- | --- | --- |",
        ]
        for t in targets_:
            lines.append(
                f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |"
            )
    micro = results.get("micro")
    if micro:
        p, s = micro["ami_parser"], micro["ticket_store"]
        lines += [
            "",
            "Micro-benchmarks on recorded data:",
            "",
            f"- AMI parsing, {p['stream_mib']} MiB of recorded events "
            f"({p['messages']} messages): AmiParser "
            f"{p['parser']['messages_per_s']:,} messages/s "
            f"({p['parser']['mib_per_s']} MiB/s); bare `split` "
            f"{p['bare_split']['messages_per_s']:,}/s "
            f"({p['bare_split']['mib_per_s']} MiB/s), "
            f"{p['split_over_parser']}x faster; AmiParser with a header-name "
            f"cache (proposal) {p['parser_with_name_cache']['messages_per_s']:,}/s, "
            f"{p['parser_with_name_cache']['speedup']}x",
            f"- Ticket store, {s['rows']} tickets: open_ticket "
            f"{s['store_open_ticket']['commits_per_s']:,} commits/s, update "
            f"{s['store_update']['commits_per_s']:,} commits/s; plain sqlite3 "
            f"executemany {s['sqlite_executemany']['rows_per_s']:,} rows/s "
            f"({s['executemany_over_store']}x), one commit per row "
            f"{s['sqlite_commit_per_row']['commits_per_s']:,}/s",
        ]
    return "\n".join(lines)


def _all_failed(arm: dict) -> int:
    return sum(p["failed"] for p in arm["steps"] + arm["concurrency"])


def _all_ticket_problems(arm: dict) -> int | str:
    phases = arm["steps"] + arm["concurrency"]
    if not any("tickets" in p for p in phases):
        return "-"
    return sum(p.get("tickets", {}).get("problems", 0) for p in phases)


def _failed(phase: dict) -> str:
    if not phase["failed"]:
        return ""
    return f" ({phase['failed']} failed: {_first(phase['failures'])})"


def _first(failures: dict) -> str:
    if not failures:
        return ""
    reason, count = next(iter(failures.items()))
    more = len(failures) - 1
    return f"{count}x {reason}" + (f" (+{more} kinds)" if more else "")
