"""How the engine's process sets Python's garbage collector: in one place, so that `switchboard serve` and the
routing benchmark, which measures the router as the engine runs it, do the same.

- What start-up loaded (modules, site, app) lives as long as the process: frozen out of the collector's way,
  a full collection walks only what runs (in the routing benchmark, walking the loaded modules each time
  made pauses of 90-120 ms and cost 15% of the decisions per second).
- Young collections run after 10,000 new container objects instead of Python's 700. Each routing decision
  makes a few dozen (events, history entries, heap entries and timers), so at 700 one ran every score of
  decisions, and every tenth of them walked the older generation with the waiting contacts in it: 7% of
  the router's instructions per decision at 10,000 waiting (callgrind: 86.7k -> 80.7k). What waits
  uncollected is at most that many objects, a few MB, and only cyclic garbage waits at all.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000


def settle() -> None:
    """Call once start-up is done, before serving."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
