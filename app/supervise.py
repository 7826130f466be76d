"""Background tasks under supervision: a task that raises is logged once and restarted with back-off.

Every long-running loop of the gateway (Asterisk watch, ARI events, line sync, security log, ...) is started here
by name, so none can die unnoticed: its state, restarts and last error are in `/healthz` and `tgtrunk status`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("tgtrunk.supervise")

FIRST_DELAY_S = 0.5
MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 5.0  # a restarted task that runs this long without failing is well again


def retrieve(future: "asyncio.Future[Any]") -> None:
    """Take the outcome of a future whose waiters have it, or have gone (a done-callback): asyncio then does not log
    its exception as never retrieved."""
    if not future.cancelled():
        future.exception()


@dataclass
class TaskState:
    name: str
    state: str = "running"  # running | restarting | finished
    restarts: int = 0
    failures_in_a_row: int = 0
    last_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state != "restarting" and self.failures_in_a_row == 0

    def as_dict(self) -> dict[str, Any]:
        return {"state": self.state, "ok": self.ok, "restarts": self.restarts,
                "failures_in_a_row": self.failures_in_a_row, "last_error": self.last_error}


class TaskSupervisor:
    def __init__(self, first_delay_s: float = FIRST_DELAY_S, max_delay_s: float = MAX_DELAY_S,
                 healthy_after_s: float = HEALTHY_AFTER_S) -> None:
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.healthy_after_s = healthy_after_s
        self.states: dict[str, TaskState] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]]) -> None:
        """Run `factory()` until it returns; each time it raises, call it again after a growing pause."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already supervised")
        self.states[name] = TaskState(name)
        self._tasks[name] = asyncio.create_task(self._keep(self.states[name], factory), name=name)

    async def _keep(self, state: TaskState, factory: Callable[[], Awaitable[None]]) -> None:
        loop = asyncio.get_running_loop()
        delay = self.first_delay_s
        while True:
            state.state = "running"
            started = loop.time()
            healthy = loop.call_later(self.healthy_after_s, self._healthy, state)
            try:
                await factory()
            except Exception as exc:  # noqa: BLE001 - whatever a task raises, it is logged and restarted
                ran_s = loop.time() - started
                if ran_s >= self.healthy_after_s:
                    delay = self.first_delay_s
                state.failures_in_a_row += 1
                state.last_error = f"{type(exc).__name__}: {exc}"
                state.state = "restarting"
                self._log_failure(state, exc, delay)
            else:
                state.state = "finished"
                return
            finally:
                healthy.cancel()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay_s)
            state.restarts += 1

    @staticmethod
    def _healthy(state: TaskState) -> None:
        if state.failures_in_a_row:
            log.info("background task %s is running again after %d failure(s)", state.name, state.failures_in_a_row)
            state.failures_in_a_row = 0

    @staticmethod
    def _log_failure(state: TaskState, exc: Exception, delay: float) -> None:
        count = state.failures_in_a_row
        if count == 1:
            log.error("background task %s failed; restarting it in %.1f s", state.name, delay, exc_info=exc)
        elif count & (count - 1) == 0:  # folded: said again at 2, 4, 8, ... failures in a row, without traceback
            log.error("background task %s failed again (%d times in a row, last: %s); restarting it in %.1f s",
                      state.name, count, state.last_error, delay)

    @property
    def ok(self) -> bool:
        return all(state.ok for state in self.states.values())

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: state.as_dict() for name, state in self.states.items()}

    async def stop(self) -> None:
        """Cancel every task, the last started first, each finished before the next is cancelled."""
        for name in reversed(list(self._tasks)):
            task = self._tasks.pop(name)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
