"""Running a coroutine from a synchronous test."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_in_own_loop(coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """asyncio.run in a thread of its own: another test in the same process (Playwright's sync
    API) may keep an event loop running in the main thread, where asyncio.run refuses to start."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            result.append(asyncio.run(coroutine))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the event loop did not finish within {timeout:g} s"
    if failure:
        raise failure[0]
    return result[0]
