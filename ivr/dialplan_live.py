"""The live dial plan: what new calls get, and the only way to change it.

:class:`LivePlan` publishes through the versions store and tells the server
the new plan; calls already in a menu keep the plan their walk was bound to.
:class:`PlanFileWatcher` polls the dial plan file once a second, so an admin
who edits and saves it publishes it; a plan with problems is refused and
logged, and the live one keeps serving.

Two ways in, one rule: the latest change wins, whether it came from the file
or from the admin API. At start-up the store is reconciled with the file: a
file edited while the server was down is published; otherwise the newest
stored version (perhaps published over the API) stays live.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from ivr import log
from ivr.dialplan_store import DialplanStore, PlanVersion, Published, digest
from ivr.dialplans import MAX_BYTES
from ivr.errors import DialplanError
from routing.dialplan import DialPlan, parse_dialplan

PlanListener = Callable[[DialPlan, PlanVersion], None]


class LivePlan:
    def __init__(
        self,
        store: DialplanStore,
        plan: DialPlan,
        on_change: PlanListener | None = None,
    ) -> None:
        self.store = store
        self.plan = plan
        self.version: PlanVersion | None = None
        self._on_change = on_change
        self._lock = asyncio.Lock()  # one publish or rollback at a time

    async def open(self, file_text: str, filename: str) -> PlanVersion:
        """Reconcile the store with the dial plan file; return the live version."""
        async with self._lock:
            versions = await asyncio.to_thread(self.store.versions)
            sha = digest(file_text)
            from_file = [v.sha256 for v in versions if v.source == "file"]
            latest = versions[-1] if versions else None
            if latest is not None and sha in (latest.sha256, *from_file[-1:]):
                try:
                    text = await asyncio.to_thread(self.store.text, latest.number)
                    plan = await asyncio.to_thread(
                        parse_dialplan, text, f"v{latest.number}.yaml"
                    )
                except DialplanError as exc:
                    # A newer server may refuse what an older one accepted.
                    log.routing.error(
                        "stored dial plan v%d no longer validates (%s); serving %s",
                        latest.number,
                        "; ".join(exc.problems[:3]),
                        filename,
                    )
                else:
                    self._adopt(Published(latest, plan, created=False))
                    return latest
            if latest is not None and latest.source != "file":
                log.routing.warning(
                    "%s changed while the server was down: it replaces v%d "
                    "(published by %s over the %s); see the stored diff",
                    filename,
                    latest.number,
                    latest.author,
                    latest.source,
                )
            published = await self._publish(
                file_text, f"file {Path(filename).name}", "file", filename
            )
            return published.version

    async def publish(
        self,
        text: str,
        author: str,
        *,
        source: str = "api",
        filename: str = "dialplan.yaml",
    ) -> Published:
        """Validate and publish; DialplanError leaves the live plan serving."""
        async with self._lock:
            return await self._publish(text, author, source, filename)

    async def publish_file(self, text: str, filename: str) -> Published | None:
        """Publish an edited dial plan file; log its problems and keep serving."""
        try:
            return await self.publish(
                text, f"file {Path(filename).name}", source="file", filename=filename
            )
        except DialplanError as exc:
            live = self.version.number if self.version else 0
            log.routing.warning(
                "%s refused, v%d keeps serving; %d problems:\n  %s",
                filename,
                live,
                len(exc.problems),
                "\n  ".join(exc.problems),
            )
            return None

    async def rollback(self, author: str, to: int | None = None) -> Published:
        async with self._lock:
            published = await asyncio.to_thread(self.store.rollback, author, to)
            self._adopt(published)
            return published

    async def _publish(
        self, text: str, author: str, source: str, filename: str
    ) -> Published:
        published = await asyncio.to_thread(
            self.store.publish, text, author, source=source, filename=filename
        )
        self._adopt(published)
        return published

    def _adopt(self, published: Published) -> None:
        version = published.version
        changed = self.version is None or self.version.number != version.number
        self.plan, self.version = published.plan, version
        if not changed:
            return
        if published.created:
            log.routing.info(
                "dial plan v%d published by %s (%s): %s; new calls use it",
                version.number,
                version.author,
                version.source,
                version.summary,
            )
        else:
            log.routing.info("serving dial plan v%d", version.number)
        if self._on_change is not None:
            self._on_change(published.plan, version)


class PlanFileWatcher:
    """Poll a file's modification time; hand each new text to ``on_text``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        on_text: Callable[[str], Awaitable[object]],
        interval: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.on_text = on_text
        self.interval = interval
        self._seen = self._stat()
        self._missing = False

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                # A bug here must not end live reload for good: log, poll on.
                log.routing.exception("watching %s failed", self.path)

    async def check(self) -> bool:
        """One poll; True when a changed text was handed on."""
        stat = self._stat()
        if stat is None:
            if not self._missing:
                log.routing.warning(
                    "dial plan file %s is gone; the live plan keeps serving", self.path
                )
            self._missing = True
            return False
        self._missing = False
        if stat == self._seen:
            return False
        self._seen = stat
        try:
            text = await asyncio.to_thread(_read, self.path)
        except (OSError, ValueError) as exc:
            log.routing.warning("cannot read dial plan file %s: %s", self.path, exc)
            return False
        await self.on_text(text)
        return True


def _read(path: Path) -> str:
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError("larger than 1 MB")
    return data.decode("utf-8-sig")
