"""Small asyncio helpers for the long-running loops of a node (timers, lease, listeners).

Some libraries turn a cancellation that lands inside one of their calls into their own
error (a lost connection, say). A loop that logs errors and carries on would then swallow
its own cancellation and never stop, and whoever waits for it would wait forever. Loops
therefore check `cancelling()` where they catch errors, also stop on a flag, and are waited
for with `stop_task`, which never waits forever."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)


def cancelling() -> bool:
    """Whether the current task has been asked to stop (even if the request was swallowed
    on its way up by a library that re-raised it as another error)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_task(task: asyncio.Task[Any] | None, what: str, seconds: float = 10.0) -> None:
    """Cancel `task` and wait for it to end, at most `seconds` (then say so in the log)."""
    if task is None or task.done():
        return
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=seconds)  # never cancels it again
    if not done:
        log.warning("%s did not stop within %.0f s; left behind", what, seconds)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("%s ended with an error while stopping", what, exc_info=task.exception())
