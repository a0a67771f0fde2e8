"""Group commit for the journal: many commands' events per transaction, in the router's order.

A commit costs one disk flush (about 3 ms on a cloud disk), so appending command by command tops out
near 300 commands a second. The router's thread calls `submit(events)` right after each command, which
fixes the journal order to the router's; a writer thread commits whatever has queued up while the
previous transaction was flushing, as one `Journal.append_many`. Each submission's Future resolves to
its seq numbers once they are durable: acknowledge and publish only then.

If a transaction fails, its submissions and every later one fail with the same error until `reset()`:
the router has run ahead of the store, and a later command may depend on a lost one, so the engine must
rebuild the router from the store (replay) before it goes on.
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from typing import Sequence

from acd.events import Event
from engine.store.journal import Journal


class JournalWriter:
    def __init__(self, journal: Journal, *, max_batches: int = 1000, start: bool = True):
        self.journal = journal
        self.max_batches = max_batches
        self._pending: deque[tuple[Sequence[Event], Future[list[int]]]] = deque()
        self._cond = threading.Condition()
        self._failure: BaseException | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="journal-writer", daemon=True)
        self.transactions = 0  # committed, for figures
        if start:
            self.start()

    def start(self) -> None:
        self._thread.start()

    @property
    def failure(self) -> BaseException | None:
        """The error that stopped the writer, until `reset()`."""
        return self._failure

    def submit(self, events: Sequence[Event]) -> Future[list[int]]:
        """Queue one command's events; call in the order the router produced them."""
        future: Future[list[int]] = Future()
        with self._cond:
            if self._failure is not None:
                future.set_exception(self._failure)
            elif self._closing:
                future.set_exception(RuntimeError("journal writer is closed"))
            else:
                self._pending.append((events, future))
                self._cond.notify()
        return future

    def reset(self) -> None:
        """Accept submissions again (after the engine rebuilt its router from the store)."""
        with self._cond:
            self._failure = None

    def close(self, timeout: float | None = None) -> None:
        """Commit what is queued, then stop the thread."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                group = [self._pending.popleft() for _ in range(min(len(self._pending), self.max_batches))]
            try:
                results = self.journal.append_many([events for events, _ in group])
            except Exception as error:  # noqa: BLE001 - handed to every waiting caller
                with self._cond:
                    self._failure = error
                    dropped = list(self._pending)
                    self._pending.clear()
                for _, future in group + dropped:
                    future.set_exception(error)
                continue
            self.transactions += 1
            for (_, future), seqs in zip(group, results, strict=True):
                future.set_result(seqs)
