"""The asyncio end of one PJSUA2 worker process.

A :class:`WorkerLink` spawns ``python -m ivr.softphone.worker``, sends it
commands, matches replies by id, hands events to a callback and resolves
waiters.  When the worker dies every pending request and waiter fails at once
with :class:`WorkerDied`, which carries the tail of the worker's stderr.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivr import log
from ivr.softphone.errors import (
    CommandFailed,
    SoftphoneError,
    SoftphoneTimeout,
    WorkerDied,
)

READY_TIMEOUT = 20.0
STDERR_TAIL = 40
# Project root, so that ``-m ivr.softphone.worker`` imports this very tree.
_ROOT = str(Path(__file__).resolve().parents[2])

# A waiter's check returns True when done, False to keep waiting, or raises.
Check = Callable[[], bool]


class _Waiter:
    __slots__ = ("check", "future")

    def __init__(self, check: Check, future: asyncio.Future):
        self.check = check
        self.future = future


class WorkerLink:
    def __init__(
        self,
        tag: str,
        proc: asyncio.subprocess.Process,
        on_event: Callable[[dict], None],
        debug: bool,
    ):
        self.tag = tag
        self.pid = proc.pid
        self._proc = proc
        self._on_event = on_event
        self._debug = debug
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._waiters: set[_Waiter] = set()
        self._ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stderr_tail: collections.deque[str] = collections.deque(
            maxlen=STDERR_TAIL
        )
        self._closing = False
        self.error: SoftphoneError | None = None  # set once the worker is gone
        self._gone = asyncio.Event()
        self._stderr_task = asyncio.create_task(self._read_stderr())
        self._stdout_task = asyncio.create_task(self._read_stdout())

    @classmethod
    async def spawn(
        cls,
        tag: str,
        on_event: Callable[[dict], None],
        *,
        record_dir: str | None = None,
        debug: bool = False,
        timeout: float = READY_TIMEOUT,
    ) -> WorkerLink:
        args = [sys.executable, "-m", "ivr.softphone.worker", "--tag", tag]
        if record_dir:
            args += ["--record-dir", record_dir]
        if debug:
            args.append("--debug")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_ROOT, env.get("PYTHONPATH")) if p
        )
        env["PYTHONUNBUFFERED"] = "1"
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=1 << 20,
        )
        link = cls(tag, proc, on_event, debug)
        try:
            async with asyncio.timeout(timeout):
                ready = await link._ready
        except TimeoutError:
            await link.close(timeout=1.0)
            raise SoftphoneTimeout(
                f"softphone worker {tag} not ready within {timeout}s{link._tail_text()}"
            ) from None
        except BaseException:
            await link.close(timeout=1.0)
            raise
        log.phones.info(
            "softphone worker %s ready (pid %s, PJSUA %s)",
            tag,
            link.pid,
            ready.get("pjsua"),
        )
        return link

    @property
    def alive(self) -> bool:
        return self.error is None

    # -- requests and waiters -------------------------------------------------

    async def request(self, cmd: str, *, timeout: float = 10.0, **args: Any) -> dict:
        """Send one command and return its result; every command has a timeout."""
        if self.error is not None:
            raise self.error
        rid = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[rid] = future
        line = json.dumps({"id": rid, "cmd": cmd, **args}, ensure_ascii=False)
        try:
            async with asyncio.timeout(timeout):
                try:
                    self._proc.stdin.write(line.encode() + b"\n")
                    await self._proc.stdin.drain()
                except (ConnectionError, RuntimeError):
                    # The pipe broke: the reader is about to report why.
                    await self._gone.wait()
                return await future
        except TimeoutError:
            if self.error is not None:
                raise self.error from None
            raise SoftphoneTimeout(
                f"softphone worker {self.tag}: no reply to {cmd!r} within {timeout}s"
            ) from None
        finally:
            self._pending.pop(rid, None)

    async def wait_for(
        self, check: Check, *, timeout: float, what: Callable[[], str]
    ) -> None:
        """Wait until ``check()`` is true after some event; it may raise instead."""
        if check():
            return
        if self.error is not None:
            raise self.error
        waiter = _Waiter(check, asyncio.get_running_loop().create_future())
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter.future
        except TimeoutError:
            raise SoftphoneTimeout(
                f"timed out after {timeout}s waiting for {what()}"
            ) from None
        finally:
            self._waiters.discard(waiter)

    def _check_waiters(self) -> None:
        for waiter in list(self._waiters):
            if waiter.future.done():
                continue
            try:
                if waiter.check():
                    waiter.future.set_result(None)
            except Exception as exc:
                waiter.future.set_exception(exc)

    # -- reading ------------------------------------------------------------

    async def _read_stdout(self) -> None:
        try:
            while line := await self._proc.stdout.readline():
                try:
                    msg = json.loads(line)
                except ValueError:
                    log.phones.warning("worker %s: not JSON: %r", self.tag, line[:200])
                    continue
                self._dispatch(msg)
        except Exception:
            log.phones.exception("worker %s: reader failed", self.tag)
        finally:
            await self._on_gone()

    def _dispatch(self, msg: dict) -> None:
        if "reply" in msg:
            future = self._pending.get(msg["reply"])
            if future is not None and not future.done():
                if msg.get("ok"):
                    future.set_result(msg.get("result") or {})
                else:
                    future.set_exception(
                        CommandFailed(f"worker {self.tag}: {msg.get('error')}")
                    )
        elif msg.get("event") == "ready":
            if not self._ready.done():
                self._ready.set_result(msg)
        else:
            try:
                self._on_event(msg)
            except Exception:
                log.phones.exception(
                    "worker %s: event %r not handled", self.tag, msg.get("event")
                )
        self._check_waiters()

    async def _read_stderr(self) -> None:
        # Chunks, not readline(): an overlong line must not stop the reading,
        # or the pipe fills up and the worker blocks in the middle of a call.
        level = log.phones.info if self._debug else log.phones.debug
        pending = b""
        while chunk := await self._proc.stderr.read(1 << 16):
            *lines, pending = (pending + chunk).split(b"\n")
            if len(pending) > 1 << 16:
                lines.append(pending)
                pending = b""
            for line in lines:
                text = line.decode(errors="replace").rstrip()
                self._stderr_tail.append(text)
                level("[%s] %s", self.tag, text)
        if pending:
            self._stderr_tail.append(pending.decode(errors="replace").rstrip())

    def _tail_text(self) -> str:
        if not self._stderr_tail:
            return ""
        return "; stderr tail:\n  " + "\n  ".join(self._stderr_tail)

    async def _on_gone(self) -> None:
        """Stdout closed: the worker exited (or is about to). Fail everyone."""
        # Let the process finish and its stderr drain so the error can quote it.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._proc.wait()
                await self._stderr_task
        code = self._proc.returncode
        if self._closing:
            self.error = WorkerDied(f"softphone worker {self.tag} was closed")
        else:
            how = (
                f"killed by signal {signal.Signals(-code).name}"
                if code is not None and code < 0
                else f"exited with code {code}"
            )
            self.error = WorkerDied(
                f"softphone worker {self.tag} (pid {self.pid}) {how}{self._tail_text()}"
            )
            log.phones.error("%s", self.error)
        for future in [
            *self._pending.values(),
            self._ready,
            *(w.future for w in self._waiters),
        ]:
            if not future.done():
                future.set_exception(self.error)
        self._gone.set()

    # -- closing ------------------------------------------------------------

    async def close(self, timeout: float = 5.0) -> None:
        """Ask the worker to hang up and exit; kill it if it does not in time."""
        if not self._closing:
            self._closing = True
            if self.error is None and self._proc.returncode is None:
                with contextlib.suppress(SoftphoneError):
                    await self.request("shutdown", timeout=timeout)
            with contextlib.suppress(OSError):
                self._proc.stdin.close()  # EOF also tells the worker to go
            try:
                async with asyncio.timeout(timeout):
                    await self._proc.wait()
            except TimeoutError:
                log.phones.warning(
                    "softphone worker %s did not exit: killing it", self.tag
                )
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
        await self._proc.wait()
        await self._gone.wait()
        await asyncio.gather(
            self._stdout_task, self._stderr_task, return_exceptions=True
        )
