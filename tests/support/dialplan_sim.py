"""A small interpreter for the dialplan that ``routing.native`` writes.

Only what the compiler emits: Answer, Set, Playback, BackGround, WaitExten,
Read, Goto, GotoIf, Queue and Hangup; ``${VAR}``, ``${LEN(...)}``,
``${REGEX("re" ...)}`` and ``$[a op b]`` with ``+ < = >=``. It lets the unit
tests compare the compiled menus with MenuWalk on any sequence of keys; the
end-to-end smoke test runs the same text on the real Asterisk.

A caller's input is a list of tokens, one per question: ``None`` for silence,
else the keys typed (a menu takes the first, a Read up to its maximum).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

Trace = list[tuple]

_EXTEN = re.compile(r"^exten => ([^,]+),1(?:\((\w+)\))?,(\w+)\((.*)\)$")
_SAME = re.compile(r"^ same => n(?:\((\w+)\))?,(\w+)\((.*)\)$")


@dataclass
class Priority:
    label: str
    app: str
    args: str


@dataclass
class Dialplan:
    contexts: dict[str, dict[str, list[Priority]]] = field(default_factory=dict)


def parse(text: str) -> Dialplan:
    plan = Dialplan()
    context: dict[str, list[Priority]] | None = None
    current: list[Priority] | None = None
    for line in text.splitlines():
        if not line.strip() or line.startswith(";"):
            continue
        if line.startswith("["):
            context = plan.contexts.setdefault(line.strip("[]"), {})
            continue
        if match := _EXTEN.match(line):
            name, label, app, args = match.groups()
            assert context is not None and name not in context, line
            current = context[name] = [Priority(label or "", app, args)]
            continue
        match = _SAME.match(line)
        assert match is not None and current is not None, f"cannot read {line!r}"
        label, app, args = match.groups()
        current.append(Priority(label or "", app, args))
    return plan


class _Stop(Exception):
    pass


class Channel:
    """One call through ``plan`` from ``context,exten,1``."""

    MAX_STEPS = 1000

    def __init__(self, plan: Dialplan, inputs: Sequence[str | None]) -> None:
        self.plan = plan
        self.inputs = list(inputs)
        self.vars: dict[str, str] = {}
        self.trace: Trace = []
        self._timed_out = False

    def run(self, context: str, exten: str) -> Trace:
        self.context, self.exten, self.index = context, exten, 0
        try:
            for _ in range(self.MAX_STEPS):
                step = self.plan.contexts[self.context][self.exten][self.index]
                self.index += 1
                getattr(self, "app_" + step.app.lower())(step.args)
            raise AssertionError(f"more than {self.MAX_STEPS} steps: a loop")
        except _Stop:
            return self.trace

    # --- applications --------------------------------------------------------

    def app_answer(self, args: str) -> None:
        pass

    def app_set(self, args: str) -> None:
        name, _, value = args.partition("=")
        self.vars[name] = self.expand(value)

    def app_playback(self, args: str) -> None:
        self.trace.append(("play", _name(self.expand(args))))

    def app_background(self, args: str) -> None:
        self.trace.append(("ask", _name(self.expand(args))))
        token = self._next_input()
        if not token:
            self._timed_out = True
            return
        key = token[0]
        exists = key in self.plan.contexts[self.context]
        self._jump(self.context, key if exists else "i", "1")

    def app_waitexten(self, args: str) -> None:
        assert self._timed_out, "WaitExten reached after a key"
        self._timed_out = False
        self._jump(self.context, "t", "1")

    def app_read(self, args: str) -> None:
        variable, prompt, most, *_ = self.expand(args).split(",")
        self.trace.append(("ask", _name(prompt)))
        token = self._next_input()
        self.vars[variable] = (token or "")[: int(most)]

    def app_goto(self, args: str) -> None:
        self._goto(self.expand(args))

    def app_gotoif(self, args: str) -> None:
        condition, _, where = self.expand(args).partition("?")
        if condition.strip() not in ("", "0"):
            self._goto(where)

    def app_queue(self, args: str) -> None:
        priority = int(self.vars.get("QUEUE_PRIO", "0"))
        self.trace.append(("queue", self.expand(args), priority))
        raise _Stop

    def app_hangup(self, args: str) -> None:
        self.trace.append(("hangup",))
        raise _Stop

    # --- helpers -------------------------------------------------------------

    def _next_input(self) -> str | None:
        if not self.inputs:
            self.trace.append(("waiting",))
            raise _Stop
        return self.inputs.pop(0)

    def _goto(self, where: str) -> None:
        parts = where.split(",")
        context, exten = self.context, self.exten
        if len(parts) == 3:
            context, exten, target = parts
        elif len(parts) == 2:
            exten, target = parts
        else:
            (target,) = parts
        self._jump(context, exten, target)

    def _jump(self, context: str, exten: str, target: str) -> None:
        steps = self.plan.contexts[context][exten]
        if target.isdigit():
            index = int(target) - 1
        else:
            index = next(i for i, s in enumerate(steps) if s.label == target)
        self.context, self.exten, self.index = context, exten, index

    def expand(self, text: str) -> str:
        """Substitute ``${...}`` (innermost first), then ``$[...]``."""
        out = []
        i = 0
        while i < len(text):
            if text.startswith("${", i):
                end = _closing(text, i + 1, "{", "}")
                out.append(self._function(self.expand(text[i + 2 : end])))
                i = end + 1
            elif text.startswith("$[", i):
                end = _closing(text, i + 1, "[", "]")
                out.append(_arith(self.expand(text[i + 2 : end])))
                i = end + 1
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _function(self, inner: str) -> str:
        if inner.startswith("LEN(") and inner.endswith(")"):
            return str(len(inner[4:-1]))
        if inner.startswith("REGEX(") and inner.endswith(")"):
            pattern, _, value = inner[7:-1].partition('" ')
            return "1" if re.search(pattern, value) else "0"
        return self.vars.get(inner, "")


def _closing(text: str, start: int, open_: str, close: str) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == open_:
            depth += 1
        elif text[i] == close:
            depth -= 1
            if depth == 0:
                return i
    raise AssertionError(f"unbalanced {open_} in {text!r}")


def _arith(expression: str) -> str:
    left, op, right = expression.split()
    a, b = int(left), int(right)
    result = {"+": a + b, "<": a < b, "=": a == b, ">=": a >= b}[op]
    return str(int(result))


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def run(text: str, inputs: Sequence[str | None], context: str, exten: str = "s"):
    """The trace of one call: ("play"|"ask", prompt), then the end."""
    return Channel(parse(text), inputs).run(context, exten)
