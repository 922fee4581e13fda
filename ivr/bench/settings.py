"""What a bench run does: ports, prompt and caller timing, the load steps.

Every load is bounded twice: a number of calls and a deadline. The rates stay
at or below 40 calls/s and the concurrency at or below 300 calls, which
Asterisk alone held on this machine (at 80/s it overloaded).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

# Asterisk never takes more than this from the bench, whatever the settings say.
MAX_RATE = 40.0
MAX_CONCURRENT = 300


@dataclass(frozen=True)
class BenchPorts:
    sip: int = 55060
    ami: int = 55038
    rtp_start: int = 56000
    rtp_end: int = 56999


@dataclass(frozen=True)
class CallerScript:
    """When a bench caller presses its keys, counted from the answer.

    The greeting cannot be interrupted, so the first key (the start menu's
    "hear it again", 9 in the 12345 plan) comes during the menu prompt with
    room for a slow start; the desk key comes during the repeated prompt.
    """

    first_key_at: float = 2.5
    second_key_after: float = 1.5
    # The caller hangs up by itself only this long after its talk should end.
    patience: float = 25.0


@dataclass(frozen=True)
class Phase:
    """One load: ``calls`` callers at ``rate`` per second, agents talk ``talk`` s."""

    name: str
    rate: float
    calls: int
    talk: float

    def __post_init__(self) -> None:
        if not 0 < self.rate <= MAX_RATE:
            raise ValueError(f"phase {self.name}: rate {self.rate} not in (0, 40]")
        if not 0 < self.calls <= 5000:
            raise ValueError(f"phase {self.name}: {self.calls} calls not in 1..5000")
        if not 0 < self.talk <= 60:
            raise ValueError(f"phase {self.name}: talk {self.talk} s not in (0, 60]")


@dataclass(frozen=True)
class BenchSettings:
    name: str = "full"
    instance: str = "bench"
    ports: BenchPorts = field(default_factory=BenchPorts)
    # Prompt lengths (s): both arms play the same short files, so that a call
    # lasts seconds and the concurrency stays bounded at high rates.
    greeting_seconds: float = 1.0
    menu_seconds: float = 2.0
    other_prompt_seconds: float = 0.6
    caller: CallerScript = field(default_factory=CallerScript)
    agents_per_desk: int = 80
    # The fixed offered load, one both arms should carry on a shared 2-core
    # machine: throughput, latency, CPU per call, events and writes per call.
    fixed: Phase = Phase("fixed", rate=10.0, calls=300, talk=3.0)
    # Step-up search for the highest rate with no failed call; stops at the
    # first step with a failure.
    steps: tuple[Phase, ...] = (
        Phase("step-15", rate=15.0, calls=300, talk=3.0),
        Phase("step-20", rate=20.0, calls=400, talk=3.0),
        Phase("step-25", rate=25.0, calls=500, talk=3.0),
        Phase("step-30", rate=30.0, calls=600, talk=3.0),
        Phase("step-35", rate=35.0, calls=700, talk=3.0),
        Phase("step-40", rate=40.0, calls=800, talk=3.0),
    )
    # When the fixed load fails: lower rates, the first that passes counts.
    steps_down: tuple[Phase, ...] = (Phase("down-5", rate=5.0, calls=100, talk=3.0),)
    # Concurrency search: callers arriving gently at ``concurrency_rate`` who
    # talk long enough that all of them are up at once; stops at the first
    # failure.
    concurrency: tuple[int, ...] = (100, 200, 300)
    concurrency_rate: float = 10.0
    # Micro-benchmarks: bytes of AMI stream, ticket rows.
    micro_stream_bytes: int = 32 << 20
    micro_tickets: int = 2000
    arms: tuple[str, ...] = ("A", "B")
    # Callers send no audio: AsyncAGI then polls for commands every 100 ms.
    silent_callers: bool = False
    # The server's nice value (-20..19): Asterisk runs a thread per call, the
    # server one, and the kernel shares the CPU between threads.
    server_nice: int = 0
    # Run the server with these fixes of ivr/bench/proposals.py patched in.
    proposals: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if any(n > MAX_CONCURRENT for n in self.concurrency):
            raise ValueError(f"concurrency steps above {MAX_CONCURRENT}")
        if not set(self.arms) <= {"A", "B"} or not self.arms:
            raise ValueError(f"arms {self.arms}: choose from A and B")

    def concurrency_phase(self, calls: int) -> Phase:
        """All ``calls`` callers up at once: each talks until the last arrives."""
        ramp = calls / self.concurrency_rate
        return Phase(
            f"hold-{calls}", rate=self.concurrency_rate, calls=calls, talk=ramp + 4
        )


FULL = BenchSettings()
QUICK = replace(
    FULL,
    name="quick",
    fixed=Phase("fixed", rate=10.0, calls=150, talk=3.0),
    steps=tuple(
        Phase(f"step-{rate}", rate=float(rate), calls=10 * rate, talk=3.0)
        for rate in (15, 20, 25, 30, 40)
    ),
    concurrency=(200,),
    micro_stream_bytes=8 << 20,
    micro_tickets=500,
)
# A handful of calls for the test suite: proves the harness, measures nothing.
SMOKE = replace(
    FULL,
    name="smoke",
    agents_per_desk=3,
    fixed=Phase("fixed", rate=4.0, calls=5, talk=0.5),
    steps=(),
    steps_down=(),
    concurrency=(),
    micro_stream_bytes=256 << 10,
    micro_tickets=50,
)
PRESETS = {s.name: s for s in (FULL, QUICK, SMOKE)}
