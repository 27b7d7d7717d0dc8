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
and full probes cost a short benchmark ~15 % of its median). A probe of more threads after the workers were
released starts with one untimed call, which restarts them. Probes back off (``PROBE_FIRST`` calls, doubled up to
``PROBE_MAX``) while they confirm the choice and restart when the choice flips. With one
torch thread (the app's default) there is nothing to choose and it costs one comparison.
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


def _median(times: deque) -> float:
    """The median of a few times (``statistics.median`` costs about a microsecond more per call)."""
    s = sorted(times)
    h = len(s) // 2
    return s[h] if len(s) % 2 else 0.5 * (s[h - 1] + s[h])


class _State:
    __slots__ = ("times", "current", "calls", "interval", "probing", "warmup")

    def __init__(self, current: int):
        self.times: dict[int, deque] = {}
        self.current = current
        self.calls = 0
        self.interval = PROBE_FIRST
        self.probing = 0  # calls left in the probe under way
        self.warmup = 0  # untimed calls before the probe's timed ones


def _release_openmp_threads() -> bool:
    from sparsity_viz.backend.kernels import release_openmp_threads  # absolute: benchmarks load variants of this file

    return release_openmp_threads()


class ThreadGuard:
    """Choose between 1 and ``threads`` threads per batch size by the recent medians of real calls.

    A 1-thread call right after one of its multi-thread calls first lets the OpenMP workers go
    (``release``, default ``kernels.release_openmp_threads``): a worker still spinning after the
    region would share a core with that call when the other core is busy, and the 1-thread times
    the choice is made on would read slower than they are.
    """

    def __init__(self, threads: int, release: Callable[[], object] | None = _release_openmp_threads):
        self.threads = max(1, int(threads))
        self.release = release
        self._states: dict[int, _State] = {}
        self._last = 1  # the thread count of this guard's last call

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
            state.probing, state.times[other] = PROBE_CALLS, deque(maxlen=WINDOW)
            # a probe of more threads after released workers: the first call restarts them (~50 us), which no later
            # call pays; timed, it alone ended the probe and the guard stayed on 1 thread for good (an audit)
            state.warmup = 1 if other > 1 and self.release is not None else 0
        n = other if state.probing else state.current
        if n == 1 and self._last > 1 and self.release is not None:
            self.release()  # untimed: the workers left spinning by the last call are not this call's cost
        self._last = n
        if state.probing and state.warmup:
            state.warmup -= 1
            return fn(n)  # untimed
        t0 = time.perf_counter()
        y = fn(n)
        self._record(state, n, other, time.perf_counter() - t0)
        return y

    @staticmethod
    def _record(state: _State, n: int, other: int, seconds: float) -> None:
        """Keep the time; after a whole probe, or on a call of the current count, choose again."""
        times = state.times.get(n)
        if times is None:
            times = state.times[n] = deque(maxlen=WINDOW)
        times.append(seconds)
        probe = state.probing > 0
        if probe:
            first = state.probing == PROBE_CALLS
            state.probing = max(0, state.probing - 1)  # (never below 0, should two threads share the guard)
            current = state.times.get(state.current)
            if first and current and seconds > ABANDON * _median(current):
                state.probing = 0  # clearly slower on its first call: the rest of the probe would only cost
            if state.probing:
                return  # decided on the whole probe
            state.calls = 0
        others = state.times.get(other)
        if others is None or state.current not in state.times:
            return
        if _median(others) < _median(state.times[state.current]):
            state.current, state.interval = other, PROBE_FIRST
        elif probe:
            state.interval = min(PROBE_MAX, state.interval * 2)

    def summary(self) -> dict[int, dict]:
        """Per batch size: the current thread count and the recent median time (us) of each count."""
        return {b: {"threads": s.current,
                    "median_us": {n: _median(ts) * 1e6 for n, ts in s.times.items()}}
                for b, s in self._states.items()}
