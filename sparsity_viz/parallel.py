"""Fine-tuning sweep points in local worker processes.

Each fine-tuned point of a sweep is independent (prune the dense model, train a
copy, evaluate), so they can run in a pool of local processes, one torch thread
each. Worth it only where each point is much longer than the cost of shipping
the model and dataset to a worker: measured in ``docs/reproductions.md`` on this
2-core machine. ``run_points`` yields rows in submission order as they finish;
when ``stop`` is set the pending points are cancelled and the finished rows are
kept (the caller has already received them).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor

import torch

from .training import _is_stopped

_STATE: dict = {}


def _init(base, dataset, finetune, dense_accuracy):
    torch.set_num_threads(1)
    _STATE.update(base=base, dataset=dataset, finetune=finetune, dense=dense_accuracy)


def _work(job):
    from .experiments import evaluate_point

    name, seed, level, masks, seconds = job
    s = _STATE
    return evaluate_point(s["base"], s["dataset"], name, seed, level, masks, s["finetune"], s["dense"], seconds)


def run_points(base, dataset, jobs: Sequence[tuple], finetune, dense_accuracy: float, *, workers: int = 2,
               stop=None) -> Iterator[dict]:
    """Evaluate ``(strategy, seed, level, masks, seconds)`` jobs with fine-tuning in ``workers`` processes."""
    if not jobs:
        return
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init,
                             initargs=(base, dataset, finetune, dense_accuracy)) as pool:
        futures = [pool.submit(_work, job) for job in jobs]
        for future in futures:
            if _is_stopped(stop):
                for f in futures:
                    f.cancel()
                break
            yield future.result()
