"""A pool of headless SIP phones for the demo and the end-to-end tests.

::

    async with SoftphoneFarm() as farm:
        agent = await farm.add_account("agent1", user="6001", password="...",
                                       port=25060, auto_answer=True)
        citizen = await farm.add_account("citizen", user="pstn", password="...",
                                         caller_id="13800000001", register=False)
        call = await citizen.call("sip:12345@127.0.0.1:25060")
        await call.wait_state("CONFIRMED")

PJSUA2 runs in worker processes (see :mod:`ivr.softphone.worker`).  This build
of PJSUA holds at most 8 accounts and 8 transports per process, and aborts
beyond that, so the farm places up to ``phones_per_worker`` phones in each
worker and starts another when they are full.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path

from ivr import log
from ivr.softphone.errors import SoftphoneError
from ivr.softphone.link import WorkerLink
from ivr.softphone.phone import Phone

MAX_PHONES_PER_WORKER = 8  # PJSUA_MAX_ACC in the pjsua2-python build
# PJSUA_MAX_CALLS of the build is 4 whatever uaConfig.maxCalls says: a fifth
# call in one process fails with PJ_ETOOMANY. Four phones a worker, each on
# one call, never hit it.
DEFAULT_PHONES_PER_WORKER = 4


class SoftphoneFarm:
    def __init__(
        self,
        *,
        debug: bool = False,
        phones_per_worker: int = DEFAULT_PHONES_PER_WORKER,
        record_dir: str | Path | None = None,
    ):
        if not 1 <= phones_per_worker <= MAX_PHONES_PER_WORKER:
            raise ValueError(f"phones_per_worker must be 1..{MAX_PHONES_PER_WORKER}")
        self.debug = debug
        self.phones_per_worker = phones_per_worker
        self._own_record_dir = record_dir is None
        self.record_dir = (
            Path(record_dir)
            if record_dir
            else Path(tempfile.mkdtemp(prefix="yihaotong-phones-"))
        )
        self.phones: dict[str, Phone] = {}
        self._links: list[WorkerLink] = []
        self._placement: dict[WorkerLink, list[str]] = {}
        self._spawn_lock = asyncio.Lock()
        self._closed = False
        self._close_task: asyncio.Task | None = None

    @classmethod
    async def start(
        cls,
        *,
        debug: bool = False,
        phones_per_worker: int = DEFAULT_PHONES_PER_WORKER,
        record_dir: str | Path | None = None,
    ) -> SoftphoneFarm:
        """Start a farm with its first worker running."""
        farm = cls(
            debug=debug, phones_per_worker=phones_per_worker, record_dir=record_dir
        )
        try:
            await farm._spawn()
        except BaseException:
            await farm.close()
            raise
        return farm

    async def __aenter__(self) -> SoftphoneFarm:
        if not self._links:
            try:
                await self._spawn()
            except BaseException:
                await self.close()
                raise
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    @property
    def worker_pids(self) -> list[int]:
        return [link.pid for link in self._links]

    async def add_account(
        self,
        name: str,
        *,
        user: str,
        password: str = "",
        domain: str = "127.0.0.1",
        port: int | None = None,
        register: bool = True,
        auth_user: str | None = None,
        caller_id: str | None = None,
        display_name: str | None = None,
        auto_answer: bool = False,
        answer_delay: float = 0.0,
        timeout: float = 10.0,
    ) -> Phone:
        """Add a phone; with ``register`` wait for the registrar's 2xx.

        ``caller_id`` is the From user (a citizen's number) while ``auth_user``
        (default ``user``) answers digest challenges.  Registration failures
        raise :class:`RegistrationFailed` with the SIP code.
        """
        if self._closed:
            raise SoftphoneError("the softphone farm is closed")
        if name in self.phones:
            raise ValueError(f"phone {name!r} exists")
        if register and port is None:
            raise ValueError("register=True needs the registrar's port")
        link = await self._link_with_room()
        phone = Phone(
            link, name, user=user, domain=domain, port=port, caller_id=caller_id
        )
        self.phones[name] = phone
        self._placement[link].append(name)
        try:
            result = await link.request(
                "add_account",
                timeout=timeout,
                name=name,
                user=user,
                password=password,
                domain=domain,
                port=port,
                register=register,
                auth_user=auth_user,
                caller_id=caller_id,
                display_name=display_name,
                auto_answer=auto_answer,
                answer_delay=answer_delay,
            )
            phone.local_port = result["local_port"]
            phone.contact_uri = result["contact"]
            if register:
                await phone.wait_registration(0, active=True, timeout=timeout)
        except BaseException:
            await self._forget(phone, link)
            raise
        log.phones.info(
            "phone %s ready on port %s (worker %s)", name, phone.local_port, link.tag
        )
        return phone

    async def remove_account(self, name: str) -> None:
        """Unregister and drop a phone, freeing its place in the worker."""
        phone = self.phones[name]
        await self._forget(phone, phone._link)

    async def _forget(self, phone: Phone, link: WorkerLink) -> None:
        self.phones.pop(phone.name, None)
        with contextlib.suppress(ValueError, KeyError):
            self._placement[link].remove(phone.name)
        if link.alive:
            with contextlib.suppress(SoftphoneError):
                await link.request("remove_account", name=phone.name)

    async def _link_with_room(self) -> WorkerLink:
        async with self._spawn_lock:
            for link in self._links:
                if link.alive and len(self._placement[link]) < self.phones_per_worker:
                    return link
            return await self._spawn()

    async def _spawn(self) -> WorkerLink:
        tag = f"w{len(self._links) + 1}"
        phones = self.phones

        def on_event(msg: dict) -> None:
            phone = phones.get(msg.get("account", ""))
            if phone is not None:
                phone._on_event(msg)

        link = await WorkerLink.spawn(
            tag, on_event, record_dir=str(self.record_dir), debug=self.debug
        )
        self._links.append(link)
        self._placement[link] = []
        return link

    async def close(self, timeout: float = 5.0) -> None:
        """Hang up, unregister and stop every worker; safe to call twice.

        A worker that has not exited ``timeout`` seconds after being asked to
        is killed.
        """
        self._closed = True
        if self._close_task is None:
            self._close_task = asyncio.ensure_future(self._close(timeout))
        await asyncio.shield(self._close_task)

    async def _close(self, timeout: float) -> None:
        await asyncio.gather(
            *(link.close(timeout) for link in self._links), return_exceptions=True
        )
        if self._own_record_dir:
            shutil.rmtree(self.record_dir, ignore_errors=True)
        log.phones.info("softphone farm closed (%d workers)", len(self._links))
