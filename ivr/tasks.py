"""Tasks a component starts on its own, owned so that none is forgotten.

They end with the owner's ``run()`` (cancelled, then awaited), and a task
that fails is logged with its name instead of vanishing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine


class TaskOwner:
    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coro: Coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._log.error(
                "task %s failed", task.get_name(), exc_info=task.exception()
            )

    async def run(self) -> None:
        """Wait until cancelled; then end every task spawned."""
        try:
            await asyncio.Event().wait()
        finally:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
