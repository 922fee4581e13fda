"""CPU time from /proc: per process (utime + stime, all threads) and machine-wide."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int | None) -> float:
    """CPU seconds used so far by ``pid`` (0.0 when there is none or it is gone)."""
    if pid is None:
        return 0.0
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # The command name may hold spaces and parentheses: fields start after ")".
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    line = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in line[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values)
    return (total - idle) / TICK, total / TICK


@dataclass
class CpuSample:
    processes: dict[str, float]
    busy: float
    total: float


class CpuMeter:
    """Named processes' CPU and the machine's, between two ``sample`` calls."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = dict(pids)

    def sample(self) -> CpuSample:
        busy, total = machine_cpu()
        return CpuSample(
            {name: process_cpu(pid) for name, pid in self.pids.items()}, busy, total
        )

    @staticmethod
    def delta(start: CpuSample, end: CpuSample) -> dict[str, float]:
        """CPU seconds per process, the machine's busy seconds, and the rest."""
        used = {
            name: round(end.processes[name] - start.processes.get(name, 0.0), 3)
            for name in end.processes
        }
        busy = end.busy - start.busy
        used["machine_busy"] = round(busy, 3)
        used["machine_total"] = round(end.total - start.total, 3)
        # What other engineers' work (and the kernel) took meanwhile.
        ours = sum(v for k, v in used.items() if not k.startswith("machine"))
        used["others"] = round(max(0.0, busy - ours), 3)
        return used


def machine_facts() -> dict:
    """Cores, memory and CPU model of this machine."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kib / (1 << 20), 1),
        "cpu_model": model or platform.processor() or "unknown",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
    }


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]
