"""Thread count of a compiled native call, kept right by measuring the calls themselves.

A thread count measured once at compile time does not hold on a shared machine: with another
process busy on the second core, an OpenMP parallel region waits at its closing barrier for a
thread that the scheduler has not run yet, and a call that took 1 ms on two idle cores can take
tens of ms (docs/backend.md, "Threads under load"). ``ThreadGuard`` therefore times every call
(two ``perf_counter`` reads), keeps the last ``WINDOW`` times of each thread count per batch
size, runs the count whose recent median is lower, and now and then probes the other count so
that the choice follows the machine's state. A probe is ``PROBE_CALLS`` consecutive calls on the
other count, which replace its older times, and the choice is made on their median: one call of a
few tens of microseconds is too noisy to decide on (a single lucky or unlucky call would flip the
choice until the next probe). A probe whose first call already takes ``ABANDON`` times the current
count's median ends there: the other count is clearly slower, and the two calls it would still make
are what probing costs (at batch 1,024 on LeNet-300-100 a 1-thread call takes twice a 2-thread one,
and full probes cost a short benchmark ~15 % of its median). Probes back off (``PROBE_FIRST`` calls, doubled up to
``PROBE_MAX``) while they confirm the choice and restart when the choice flips. With one
torch thread (the app's default) there is nothing to choose and it costs one comparison.

Steady calls are compared with steady calls. After a parallel region torch's OpenMP workers keep spinning
for a few ms (libgomp's default spin count); on a loaded machine that spin takes a core away from the next
1-thread call, whoever made the region (docs/backend.md, "Threads under load": the 2048-wide MLP at batch
1,024, busy, 12.2 ms a 1-thread call, 17-24 ms right after a 2-thread region; 12.2-13.7 ms with
``GOMP_SPINCOUNT=1000``). So a call that comes straight after the guard's previous call on the same count
(``STEADY_GAP``) is "steady" and is also kept in a window of its own; the choice is made on the steady
windows when both counts have steady times, else on all recent calls (calls that all come one by one,
far apart, are all that there is to compare). A call after a switch of counts, or after other work, is
not steady: it carries the cost of what ran before it, and choosing on it kept a loaded machine on two
threads that lost to one in a stream of calls.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import torch

WINDOW = 5  # recent call times kept per (batch, threads)
PROBE_FIRST = 16  # calls between probes of the other thread count, doubled while confirmed
PROBE_MAX = 1024
PROBE_CALLS = 3  # consecutive calls on the other count per probe (their median decides)
ABANDON = 1.5  # a probe's first call this many times the current count's median ends the probe
STEADY_GAP = 0.25  # a call starting within this share of the previous call's time after it, on its count, is steady


def _median(times: deque) -> float:
    """The median of a few times (``statistics.median`` costs about a microsecond more per call)."""
    s = sorted(times)
    h = len(s) // 2
    return s[h] if len(s) % 2 else 0.5 * (s[h - 1] + s[h])


class _State:
    __slots__ = ("times", "steady", "current", "calls", "interval", "probing", "last_n", "last_end", "last_s")

    def __init__(self, current: int):
        self.times: dict[int, deque] = {}  # every recent call per thread count
        self.steady: dict[int, deque] = {}  # the recent steady ones (straight after a call on the same count)
        self.current = current
        self.calls = 0
        self.interval = PROBE_FIRST
        self.probing = 0  # calls left in the probe under way
        self.last_n, self.last_end, self.last_s = 0, 0.0, 0.0  # the previous call: count, end, seconds

    def medians(self, a: int, b: int) -> tuple[float, float] | None:
        """Recent medians of counts ``a`` and ``b``: of steady calls when both have some, else of all calls."""
        for kind in (self.steady, self.times):
            if kind.get(a) and kind.get(b):
                return _median(kind[a]), _median(kind[b])
        return None


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
        if not state.probing and (other not in state.times or state.calls >= state.interval):
            # a probe is a fresh look at the other count: its older times describe another load
            state.probing = PROBE_CALLS
            state.times[other], state.steady[other] = deque(maxlen=WINDOW), deque(maxlen=WINDOW)
        n = other if state.probing else state.current
        t0 = time.perf_counter()
        steady = n == state.last_n and t0 - state.last_end <= STEADY_GAP * state.last_s
        y = fn(n)
        t1 = time.perf_counter()
        state.last_n, state.last_end, state.last_s = n, t1, t1 - t0
        self._record(state, n, other, t1 - t0, steady)
        return y

    @staticmethod
    def _record(state: _State, n: int, other: int, seconds: float, steady: bool) -> None:
        """Keep the time; after a whole probe, or on a call of the current count, choose again."""
        for kind in (state.times, state.steady) if steady else (state.times,):
            times = kind.get(n)
            if times is None:
                times = kind[n] = deque(maxlen=WINDOW)
            times.append(seconds)
        probe = state.probing > 0
        if probe:
            first = state.probing == PROBE_CALLS
            state.probing = max(0, state.probing - 1)  # (never below 0, should two threads share the guard)
            current = state.times.get(state.current)  # all calls: the probe's first one follows a switch of counts
            if first and current and seconds > ABANDON * _median(current):
                state.probing = 0  # clearly slower on its first call: the rest of the probe would only cost
            if state.probing:
                return  # decided on the whole probe
            state.calls = 0
        medians = state.medians(other, state.current)
        if medians is None:
            return
        if medians[0] < medians[1]:
            state.current, state.interval = other, PROBE_FIRST
        elif probe:
            state.interval = min(PROBE_MAX, state.interval * 2)

    def summary(self) -> dict[int, dict]:
        """Per batch size: the current thread count and the recent median time (us) of each count, of all its
        calls and of its steady ones."""
        return {b: {"threads": s.current,
                    "median_us": {n: _median(ts) * 1e6 for n, ts in s.times.items() if ts},
                    "steady_us": {n: _median(ts) * 1e6 for n, ts in s.steady.items() if ts}}
                for b, s in self._states.items()}
