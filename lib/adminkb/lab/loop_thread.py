"""An asyncio event loop on a daemon thread, for the lab servers that run beside the caller's code.

The remote receivers and the lab DNS server both open their sockets in a coroutine, serve until
they are stopped from another thread, and then close their sockets in a second coroutine.
`LoopThread` does the thread and loop handling for both.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

CoroutineFactory = Callable[[], Awaitable[None]]


class LoopThread:
    """An event loop on its own daemon thread, started by a coroutine that opens sockets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, opener: CoroutineFactory, timeout: float) -> None:
        """Run `opener()` on a new loop thread and return once it has finished.

        Raises TimeoutError when `opener` takes longer than `timeout` seconds. The caller then
        calls `stop`. Re-raises the OSError that `opener` raised, after the thread has ended.
        """
        ready = threading.Event()
        errors: list[OSError] = []
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run, args=(loop, opener, ready, errors), name=self.name,
                                  daemon=True)
        self.loop, self._thread = loop, thread
        thread.start()
        if not ready.wait(timeout):
            raise TimeoutError(f"{self.name} did not start within {timeout} s")
        if errors:
            thread.join(timeout)
            self.loop = self._thread = None
            raise errors[0]

    def stop(self, closer: CoroutineFactory, timeout: float) -> None:
        """Run `closer()` on the loop, stop the loop and wait for the thread to end.

        Stopping a LoopThread that is not running does nothing. An exception from `closer`
        propagates after the loop has been stopped.
        """
        loop, thread = self.loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if thread.is_alive():
                try:
                    asyncio.run_coroutine_threadsafe(closer(), loop).result(timeout)
                finally:
                    loop.call_soon_threadsafe(loop.stop)
                    thread.join(timeout)
        finally:
            self.loop = self._thread = None

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, opener: CoroutineFactory, ready: threading.Event,
             errors: list[OSError]) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(opener())
        except OSError as error:
            errors.append(error)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            cancel_pending(loop)
            loop.close()


def cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks still running on a stopped `loop` and let their clean-up run.

    Sessions still open when a lab server stops are cancelled this way, so closing the loop
    afterwards does not warn about pending tasks.
    """
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
