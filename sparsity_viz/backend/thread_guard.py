"""Thread count of a compiled native call, kept right by measuring the calls themselves.

A thread count measured once at compile time does not hold on a shared machine: with another
process busy on the second core, an OpenMP parallel region waits at its closing barrier for a
thread that the scheduler has not run yet, and a call that took 1 ms on two idle cores can take
tens of ms (docs/backend.md, "Threads under load"). ``ThreadGuard`` therefore times every call
(two ``perf_counter`` reads), keeps the last ``WINDOW`` times of each thread count per batch
size, runs the count whose recent median is lower, and now and then probes the other count (one
call, which replaces that count's older times) so that the choice follows the machine's state. Probes back off (``PROBE_FIRST`` calls, doubled up
to ``PROBE_MAX``) while they confirm the choice and restart when the choice flips. With one
torch thread (the app's default) there is nothing to choose and it costs one comparison.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable

import torch

WINDOW = 5  # recent call times kept per (batch, threads)
PROBE_FIRST = 16  # calls between probes of the other thread count, doubled while confirmed
PROBE_MAX = 1024


class _State:
    __slots__ = ("times", "current", "calls", "interval")

    def __init__(self, current: int):
        self.times: dict[int, deque] = {}
        self.current = current
        self.calls = 0
        self.interval = PROBE_FIRST


class ThreadGuard:
    """Choose between 1 and ``threads`` threads per batch size by the recent medians of real calls."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))
        self._states: dict[int, _State] = {}

    def counts(self) -> tuple[int, ...]:
        """The thread counts it chooses between now (capped by torch's intra-op threads)."""
        n = min(self.threads, torch.get_num_threads())
        return (1,) if n <= 1 else (1, n)

    def choice(self, batch: int) -> int:
        """The thread count the next (non-probe) call at ``batch`` would use."""
        counts = self.counts()
        state = self._states.get(batch)
        return counts[-1] if state is None or state.current not in counts else state.current

    def run(self, fn: Callable[[int], torch.Tensor], batch: int) -> torch.Tensor:
        """``fn(threads)`` with the chosen (or, now and then, the probed) thread count; records its time."""
        counts = self.counts()
        if len(counts) == 1:
            return fn(1)
        state = self._states.get(batch)
        if state is None or state.current not in counts:
            state = self._states[batch] = _State(counts[-1])
        state.calls += 1
        other = counts[0] if state.current != counts[0] else counts[-1]
        probe = other not in state.times or state.calls >= state.interval
        n = other if probe else state.current
        t0 = time.perf_counter()
        y = fn(n)
        self._record(state, n, time.perf_counter() - t0, counts, probe)
        return y

    def _record(self, state: _State, n: int, seconds: float, counts: tuple[int, ...], probe: bool) -> None:
        if probe:  # a probe is a fresh look at the other count: its older times describe another load
            state.times[n] = deque(maxlen=WINDOW)
            state.calls = 0
        state.times.setdefault(n, deque(maxlen=WINDOW)).append(seconds)
        if all(c in state.times for c in counts):
            best = min(counts, key=lambda c: statistics.median(state.times[c]))
            if best != state.current:
                state.current, state.interval = best, PROBE_FIRST
            elif probe:
                state.interval = min(PROBE_MAX, state.interval * 2)

    def summary(self) -> dict[int, dict]:
        """Per batch size: the current thread count and the recent median time (us) of each count."""
        return {b: {"threads": s.current,
                    "median_us": {n: statistics.median(ts) * 1e6 for n, ts in s.times.items()}}
                for b, s in self._states.items()}
