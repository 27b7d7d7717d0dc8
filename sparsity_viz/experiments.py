"""Sweeps: strategy x sparsity level x seed, each point what that strategy really does, as a tidy DataFrame.

A sweep *plans* one ``SweepPoint`` per (strategy, seed, level), *maps* them
through an executor (``executors.py``: serial, local processes, ...) with
``run_point``, and *assembles* the rows. Every point starts from the dense
model, so points are independent and a stopped sweep returns the points it
finished.

- **One-shot** strategies prune the dense model at the level, then fine-tune
  with ``finetune`` if given. Score strategies are scored once per seed in
  the planning process and every level is cut from that one ``Ranking``
  (``Strategy.ranking``: the same masks ``prune`` gives, at a fraction of the
  cost); the others compute their masks inside the point.
- **Scheduled** strategies (gradual, iterative, SET, RigL) prune while training,
  so a point runs the strategy *as scheduled*: ``strategy.run(dense, dataset,
  level, config)`` with the ``schedule`` config (or, when it is None, the
  ``finetune`` one). Without a training budget they are left out, and
  ``frame.attrs["skipped"]`` says why. At level 0 a scheduled point is the
  dense model itself (nothing to prune, no training), like a one-shot point.

Each row states its training budget: ``kind`` and ``train_epochs`` (epochs of
training the point cost; for IMP that is every round).
"""

from __future__ import annotations

import copy
import io
import itertools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from .connectivity import effective_sparsity, layer_masks, weight_masks
from .data import Dataset, data_batch
from .devices import resolve_device
from .executors import Executor, get_executor
from .layers import is_chain
from .results_store import ResultsStore, point_key
from .masks import Masks, apply_masks, full_masks, require_finite
from .pruning import get_strategy
from .pruning.base import SCOPES, Strategy, wants_batch
from .run_config import read_header, run_id, sweep_config, with_header
from .training import TrainConfig, TrainingDiverged, evaluate, is_stopped, train
from .whole_numbers import is_whole

SWEEP_COLUMNS = [
    "strategy", "kind", "sparsity", "seed", "finetune_epochs", "train_epochs", "achieved_sparsity",
    "effective_sparsity", "compression", "accuracy", "loss", "dense_accuracy", "collapsed", "seconds", "replicated",
]
# why a sweep without a training budget leaves a scheduled strategy out (frame.attrs["skipped"])
SKIP_REASON = ("it prunes while it trains (a scheduled strategy), so it has no one-shot result; it runs as "
               "scheduled when the sweep has a training budget (schedule or fine-tuning epochs).")


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: what ``run_point`` needs besides the shared model, dataset and device.

    Attributes:
        strategy: registry name.
        seed: the strategy's seed, and the seed of its training shuffles.
        level: target sparsity.
        scope: passed to the strategy (None: its default).
        config: training for the point: fine-tuning after a one-shot prune, or the
            schedule's training; None (or 0 epochs for one-shot) = no training.
        masks: one-shot masks already cut from a shared ranking; None = the point computes them.
        seconds: time already spent on the point while planning (its share of the ranking).
    """

    strategy: str
    seed: int
    level: float
    scope: str | None = None
    config: TrainConfig | None = None
    masks: Masks | None = field(default=None, compare=False, repr=False)
    seconds: float = 0.0

    @property
    def label(self) -> str:
        """The point in words (error messages)."""
        return f"{self.strategy} (seed {self.seed}) at {100 * self.level:g} %"


@dataclass(frozen=True)
class SweepGroup:
    """The untrained one-shot points of one (strategy, seed) as one task: its ranking, cut at every level.

    Planned instead of single points for executors with ``groups`` (Ray: a remote task costs
    more than an untrained point); ``run_point`` runs it and returns one row per level.
    """

    strategy: str
    seed: int
    levels: tuple[float, ...]
    scope: str | None = None

    @property
    def label(self) -> str:
        return f"{self.strategy} (seed {self.seed}) at {', '.join(f'{100 * v:g} %' for v in self.levels)}"


def sweep(
    model: nn.Module,
    dataset: Dataset,
    strategies: Sequence[str],
    levels: Sequence[float],
    seeds: Sequence[int] = (0,),
    *,
    finetune: TrainConfig | None = None,
    schedule: TrainConfig | None = None,
    scope: str | None = None,
    baselines: bool = False,
    executor: str | Executor | None = None,
    workers: int = 1,
    progress: Callable[[float, dict], None] | None = None,
    stop: Callable[[], bool] | object | None = None,
    device: str = "auto",
    evaluator: Callable[[nn.Module], nn.Module] | None = None,
    model_name: str | None = None,
    store: str | Path | None = None,
) -> pd.DataFrame:
    """Accuracy of ``model`` pruned by each strategy at each level and seed, as each strategy prunes.

    Args:
        model: the dense model (not modified).
        dataset: test split for accuracy, train split for training and data batches.
        strategies: registry names.
        levels: target sparsities in [0, 1].
        seeds: seeds of the strategy (and of its training shuffles).
        finetune: one-shot points are fine-tuned with it (masks kept; not at level 0).
        schedule: the training budget of scheduled strategies (gradual, iterative, SET, RigL);
            None uses ``finetune``; with neither (or 0 epochs) they are skipped.
        scope: passed to strategies that support it.
        baselines: add the random strategy if it is missing.
        executor: ``"serial"``, ``"process"`` (see ``executors.EXECUTORS``) or an ``Executor``.
            None (as before executors existed): ``"process"`` when ``workers > 1`` and points
            train, else ``"serial"`` (an untrained point takes ~10 ms: process start-up would dominate).
        workers: worker processes of the process executor.
        progress: ``progress(fraction_done, last_row)`` after each finished point.
        stop: checked before each point and by running training; finished rows are returned.
        device: where training and evaluation run (ranking and one-shot masks: CPU).
        evaluator: maps each pruned model to the module that is evaluated (e.g. a compiled sparse
            model with the same predictions); identity when None. Must be picklable (a module-level
            function) for the process executor. It must not change the results: it is not part of the
            run id (the app evaluates compiled locally and plainly on a cluster, one run), so a store's
            rows are read back whichever evaluator measured them.
        model_name: recorded in the configuration (e.g. the bundled sample's name).
        store: a results store (``results_store``: a ``.csv`` file, or a directory with one file per
            run id): each finished point is written to it as it arrives, and points this run id
            already has there are read back instead of computed (resume after a stop or a kill).
            With ``stop`` already set, nothing is computed: the stored rows alone (``read_back``).

    Returns:
        One row per finished point with ``SWEEP_COLUMNS`` (``kind``: ``"one_shot"`` or
        ``"scheduled"``; ``train_epochs``: epochs of training the point cost; ``compression`` =
        1 / (1 - achieved sparsity), inf when nothing is left; ``collapsed``: some layer lost
        every weight; ``replicated``: the row is a copy of the first seed's, see below), in strategy,
        seed, level order. ``attrs``: ``dense_accuracy``, ``cancelled`` (some planned point did not
        finish), ``resumed`` (rows read back from ``store``), ``skipped`` (``{name: reason}``),
        ``config`` (``run_config.sweep_config``) and ``run_id``.

    A point whose result cannot depend on its seed (an unseeded strategy, ``Strategy.seeded``
    False, at a point that does not train) is computed for the first seed only; the other
    seeds get copies with ``replicated`` True and ``seconds`` 0.
    """
    require_finite(model, "A sweep")  # NaN weights gave rows of chance accuracy instead of the error prune gives
    dev = str(resolve_device(device))
    names = list(dict.fromkeys(list(strategies) + (["random"] if baselines else [])))
    instances = {name: get_strategy(name) for name in names}  # fail fast on unknown names, before any work
    if not names or not len(levels):  # an empty frame, not cancelled, read as a sweep that ran
        raise ValueError("A sweep needs at least one strategy and one sparsity level.")
    if scope is not None and scope not in SCOPES:  # "Global" was ignored (layer scope) yet recorded as given
        raise ValueError(f"Unknown scope {scope!r}; choose one of {', '.join(SCOPES)} (or None: each strategy's own).")
    if not is_whole(workers) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1, got {workers!r}.")
    for level in levels:
        if not 0.0 <= float(level) <= 1.0:
            raise ValueError(f"Sparsity levels must lie in [0, 1], got {level!r}.")
    if len({float(v) for v in levels}) < len(levels):  # a repeated point would be counted twice and never finish
        raise ValueError(f"Sparsity levels must be distinct, got {list(levels)!r}.")
    given = list(seeds)
    if not all(is_whole(s) for s in given):  # 0.9 ran as seed 0
        raise ValueError(f"Seeds must be whole numbers, got {given!r}.")
    seeds = [int(s) for s in given]
    if not seeds or len(set(seeds)) < len(seeds):
        raise ValueError(f"Seeds must be one or more distinct integers, got {seeds!r}.")
    training = schedule if schedule is not None else finetune
    trains = any(c is not None and c.epochs > 0 for c in (finetune, schedule))
    runner = get_executor(executor if executor is not None else ("process" if workers > 1 and trains else "serial"),
                          workers)
    skipped = {name: SKIP_REASON for name, s in instances.items()
               if s.scheduled and (training is None or training.epochs == 0)}
    base = copy.deepcopy(model).cpu().eval()
    config = sweep_config(base, dataset, names, levels, seeds, finetune=finetune, schedule=schedule, scope=scope,
                          model_name=model_name)
    names = [n for n in names if n not in skipped]
    saved = ResultsStore(store, run_id(config), config, SWEEP_COLUMNS) if store is not None else None
    done = _stored_points(saved, names, levels, seeds)  # {point key: row} finished earlier by this run id
    resumed = len(done)
    if done:  # measured when the stored points were
        dense = next(iter(done.values()))["dense_accuracy"]
    else:  # stopped before it began (e.g. a read-back of an empty store): nothing measured
        dense = None if is_stopped(stop) else evaluate(copy.deepcopy(base).to(dev), dataset.x_test,
                                                       dataset.y_test, device=dev).accuracy
    shared = {"model": base, "dataset": dataset, "device": dev, "evaluator": evaluator, "dense_accuracy": dense,
              "chain": is_chain(base)}  # effective sparsity (paths input -> output) is only defined on a chain
    points = _plan(base, dataset, names, [float(v) for v in levels], seeds, scope, finetune, training,
                   done=set(done), groups=getattr(runner, "groups", False))
    rows: list[dict] = list(done.values())
    total = len(names) * len(seeds) * len(levels)

    def keep(new: list[dict]) -> None:  # rows of a finished point (and its replicas) not in the store yet
        fresh = [r for r in new if point_key(r["strategy"], r["seed"], r["sparsity"]) not in done]
        for r in fresh:
            if saved is not None:
                saved.append(point_key(r["strategy"], r["seed"], r["sparsity"]), r)
            done[point_key(r["strategy"], r["seed"], r["sparsity"])] = r
        rows.extend(fresh)

    for row in list(rows):  # replicas of a stored point whose copies were not written (killed in between)
        keep(_replicas(row, instances[row["strategy"]], seeds, finetune, training))
    first = None if is_stopped(stop) else next(points, None)  # nothing left: no executor start-up (Ray: seconds)
    results = runner.map(run_point, itertools.chain([first], points), shared=shared, stop=stop) if first else ()
    for result in results:
        for row in [result] if isinstance(result, dict) else (result or []):  # None: stopped while running
            keep([row, *_replicas(row, instances[row["strategy"]], seeds, finetune, training)])
            if progress is not None:
                progress(len(rows) / total, row)
    frame = pd.DataFrame(rows, columns=SWEEP_COLUMNS)
    if len(frame):  # the same row order however the points were run
        rank = {n: i for i, n in enumerate(names)}
        frame = (frame.assign(_r=frame["strategy"].map(rank))
                 .sort_values(["_r", "seed", "sparsity"], kind="stable").drop(columns="_r").reset_index(drop=True))
    frame.attrs["dense_accuracy"] = dense
    frame.attrs["cancelled"] = len(rows) < total
    frame.attrs["resumed"] = resumed  # rows read back from the store
    frame.attrs["skipped"] = skipped
    frame.attrs["config"] = config
    frame.attrs["run_id"] = run_id(config)
    return frame


def read_back(*args: Any, store: str | Path, **kwargs: Any) -> pd.DataFrame | None:
    """The rows ``sweep(*args, store=store, **kwargs)`` already has in ``store``, computing nothing;
    None when there are none. ``attrs["cancelled"]``: some points are missing (a re-run computes them)."""
    frame = sweep(*args, store=store, **{**kwargs, "stop": _always_stopped})
    return frame if len(frame) else None


def _always_stopped() -> bool:
    return True


def seed_free(strategy: Strategy, level: float, config: TrainConfig | None) -> bool:
    """True when a point cannot depend on its seed: an unseeded strategy at a point that does not train.

    ``config`` is the point's training (fine-tuning, or the schedule for scheduled strategies);
    level 0 never trains (nothing to prune).
    """
    return not strategy.seeded and (level == 0 or config is None or config.epochs == 0)


def _replicas(row: dict, strategy: Strategy, seeds: Sequence[int], finetune: TrainConfig | None,
              schedule: TrainConfig | None) -> list[dict]:
    """Copies of a seed-free point of the first seed for the other seeds (none otherwise)."""
    config = schedule if strategy.scheduled else finetune
    if row["seed"] != seeds[0] or not seed_free(strategy, row["sparsity"], config):
        return []
    return [{**row, "seed": s, "seconds": 0.0, "replicated": True} for s in seeds[1:]]


def _stored_points(saved: ResultsStore | None, names: Sequence[str], levels: Sequence[float],
                   seeds: Sequence[int]) -> dict[str, dict]:
    """The store's rows of this run that are points of this sweep, each under the key its own columns give.

    A row edited into the store (a level the run never had, or a key that disagrees with its sparsity column) was
    read back and shown as a result (an audit); such rows are left out, and their points computed.
    """
    if saved is None:
        return {}
    planned = {point_key(n, s, float(v)) for n in names for s in seeds for v in levels}
    return {key: row for key, row in saved.rows().items()
            if key in planned and _row_key(row) == key}


def _row_key(row: Mapping[str, Any]) -> str | None:
    """The point key a stored row's own columns name (None when they cannot)."""
    try:
        return point_key(str(row["strategy"]), int(row["seed"]), float(row["sparsity"]))
    except (KeyError, TypeError, ValueError):
        return None


def _plan(base: nn.Module, dataset: Dataset, names: Sequence[str], levels: Sequence[float], seeds: Sequence[int],
          scope: str | None, finetune: TrainConfig | None, schedule: TrainConfig | None, *,
          done: set[str] = frozenset(), groups: bool = False) -> Iterator[SweepPoint | SweepGroup]:
    """The sweep's points, lazily: a strategy with a ``ranking`` is sorted once per seed, when first needed.

    Points whose key is in ``done`` (read from a results store) are left out; with ``groups`` the
    untrained one-shot points of a (strategy, seed) come as one ``SweepGroup`` (ranked in its task).
    """
    for name in names:
        own_scope = scope if scope in get_strategy(name).scopes else None
        for i, seed in enumerate(seeds):
            strat = get_strategy(name, seed=seed, scope=own_scope)
            config = schedule if strat.scheduled else finetune
            levels_here = [v for v in levels if (i == 0 or not seed_free(strat, v, config))  # others: copies
                           and point_key(name, seed, v) not in done]
            if not levels_here:
                continue
            if groups and not strat.scheduled and (config is None or config.epochs == 0):
                yield SweepGroup(name, int(seed), tuple(levels_here), own_scope)
                continue
            if strat.scheduled:
                for level in levels_here:
                    yield SweepPoint(name, int(seed), level, own_scope, schedule)
                continue
            t0 = time.perf_counter()
            batch = data_batch(dataset, seed=seed) if wants_batch(strat) else None
            ranking = strat.ranking(base, batch)
            if ranking is None:  # masks that are not a cut of fixed scores: each point computes its own
                for level in levels_here:
                    yield SweepPoint(name, int(seed), level, own_scope, finetune)
                continue
            share = (time.perf_counter() - t0) / len(levels_here)
            for level in levels_here:
                t0 = time.perf_counter()
                masks = ranking.masks(level)
                yield SweepPoint(name, int(seed), level, own_scope, finetune, masks,
                                 share + time.perf_counter() - t0)


def run_point(point: SweepPoint, shared: Mapping[str, Any], stop: Any = None) -> dict | None:
    """One sweep row: the strategy at ``point.level`` from the shared dense model, trained as the point says.

    ``shared`` holds ``model`` (dense, CPU), ``dataset``, ``device``, ``evaluator`` and
    ``dense_accuracy``. Returns None when ``stop`` ends the point before it finished; a
    ``SweepGroup`` gives the list of its finished rows.
    """
    if isinstance(point, SweepGroup):
        return _run_group(point, shared, stop)
    try:
        return _run_one(point, shared, stop)
    except TrainingDiverged as exc:  # say which point: a sweep of many stopped on it without naming it (an audit)
        raise TrainingDiverged(f"{point.label}: {exc}", exc.result, exc.epoch, exc.reason) from None


def _run_one(point: SweepPoint, shared: Mapping[str, Any], stop: Any = None) -> dict | None:
    if is_stopped(stop):
        return None
    t0 = time.perf_counter()
    base, dataset, dev = shared["model"], shared["dataset"], shared["device"]
    strat = get_strategy(point.strategy, seed=point.seed, scope=point.scope)
    config = replace(point.config, seed=point.seed, device=dev) if point.config is not None else None
    epochs = 0
    if strat.scheduled:
        if point.level == 0 or config is None:  # nothing to prune: the dense model
            net, masks = copy.deepcopy(base).to(dev), full_masks(base, strat.include_bias)
        else:
            result = strat.run(copy.deepcopy(base), dataset, point.level, config, stop=stop)
            if result.stopped:
                return None
            net, masks, epochs = result.model.to(dev), result.masks, strat.training_epochs(point.level, config)
    else:
        masks = point.masks
        if masks is None:
            batch = data_batch(dataset, seed=point.seed) if wants_batch(strat) else None
            masks = strat.compute_masks(copy.deepcopy(base), point.level, batch=batch)
        net = apply_masks(copy.deepcopy(base), masks).to(dev)
        if config is not None and config.epochs > 0 and point.level > 0:
            result = train(net, dataset, config, masks=masks, stop=stop)
            if result.stopped:
                return None
            net, epochs = result.model, config.epochs
    evaluator = shared.get("evaluator")
    ev = evaluate(evaluator(net) if evaluator is not None else net, dataset.x_test, dataset.y_test, device=dev)
    return _row(point, strat, masks, ev, epochs, shared["dense_accuracy"], point.seconds + time.perf_counter() - t0,
                base if shared.get("chain", True) else None)


def _run_group(group: SweepGroup, shared: Mapping[str, Any], stop: Any = None) -> list[dict]:
    """The group's ranking (once), cut and evaluated at each level: what planning + ``run_point`` do per point."""
    t0 = time.perf_counter()
    strat = get_strategy(group.strategy, seed=group.seed, scope=group.scope)
    batch = data_batch(shared["dataset"], seed=group.seed) if wants_batch(strat) else None
    ranking = strat.ranking(shared["model"], batch)
    share = (time.perf_counter() - t0) / len(group.levels)
    rows = []
    for level in group.levels:
        t0 = time.perf_counter()
        masks = ranking.masks(level) if ranking is not None else None  # None: the point computes its own
        row = run_point(SweepPoint(group.strategy, group.seed, level, group.scope, None, masks,
                                   share + time.perf_counter() - t0), shared, stop)
        if row is None:
            break
        rows.append(row)
    return rows


def _row(point: SweepPoint, strat: Strategy, masks: Masks, ev, epochs: int, dense_accuracy: float,
         seconds: float, chain: nn.Module | None = None) -> dict:
    """One point's row; ``chain``: the model when it is a chain (effective sparsity needs its forward order)."""
    weights = weight_masks(masks)
    alive = sum(int(m.sum()) for _, m in weights)
    size = sum(m.numel() for _, m in weights)
    return {
        "strategy": point.strategy, "kind": strat.kind, "sparsity": point.level,
        "seed": point.seed, "finetune_epochs": 0 if strat.scheduled else epochs, "train_epochs": epochs,
        "achieved_sparsity": 1.0 - alive / size if size else 0.0, "effective_sparsity": (effective_sparsity(layer_masks(chain, masks)) if chain is not None
                               else float("nan")),  # forward order: registration order read a head-first chain wrong
        "compression": size / alive if alive else float("inf"),
        "accuracy": ev.accuracy, "loss": ev.loss, "dense_accuracy": dense_accuracy,
        "collapsed": any(not m.any() for _, m in weights), "seconds": seconds, "replicated": False,
    }


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy, level and fine-tuning: accuracy mean, std, min, max over seeds, the mean
    compression / effective sparsity (any collapse flagged), and the point's kind and training
    epochs. Keeps the frame's ``attrs``."""
    keys = ["strategy", "sparsity", "finetune_epochs"]
    out = (frame.groupby(keys, as_index=False)
           .agg(mean=("accuracy", "mean"), std=("accuracy", "std"), min=("accuracy", "min"),
                max=("accuracy", "max"), seeds=("accuracy", "count"), compression=("compression", "mean"),
                effective_sparsity=("effective_sparsity", "mean"), collapsed=("collapsed", "any"),
                kind=("kind", "first"), train_epochs=("train_epochs", "max"))
           .fillna({"std": 0.0}))
    out.attrs.update(frame.attrs)
    return out


# ---------------------------------------------------------------------------
# A sweep as a CSV file with its configuration, and a re-run from it


def sweep_csv(frame: pd.DataFrame, config: Mapping[str, Any] | None = None) -> str:
    """The frame as CSV text after a ``# key: <json>`` header of its configuration (``attrs["config"]``).

    ``pandas.read_csv(..., comment="#")`` reads the rows alone; ``read_sweep_csv`` reads both.
    """
    config = config if config is not None else frame.attrs.get("config")
    if config is None:
        raise ValueError("This frame has no configuration (attrs['config']): pass config= or use sweep()'s frame.")
    return with_header(config, frame.to_csv(index=False))


def read_sweep_csv(path_or_buffer: Any) -> pd.DataFrame:
    """A sweep CSV written by ``sweep_csv``: the rows, with ``attrs["config"]`` and ``attrs["run_id"]``.

    Raises:
        ValueError: no configuration header, or its run id does not match its configuration
            (the header was edited).
    """
    if hasattr(path_or_buffer, "read"):
        text = path_or_buffer.read()
        text = text.decode() if isinstance(text, bytes) else text
    else:
        with open(path_or_buffer, encoding="utf-8") as fh:
            text = fh.read()
    config, stated = read_header(text.splitlines())
    if not config:
        raise ValueError("This CSV has no '# key: value' configuration header; it was not written by sweep_csv.")
    if stated is not None and stated != run_id(config):
        raise ValueError(f"The header says run id {stated} but its configuration hashes to {run_id(config)}: "
                         "the header was edited.")
    frame = pd.read_csv(io.StringIO(text), comment="#")  # pandas >= 3 reads floats back bit for bit
    frame.attrs["config"] = config
    frame.attrs["run_id"] = run_id(config)
    return frame


def rerun(config: Mapping[str, Any], *, model: nn.Module | None = None, dataset: Dataset | None = None,
          **kwargs: Any) -> pd.DataFrame:
    """The sweep ``config`` (``frame.attrs["config"]``, or ``read_sweep_csv(...).attrs["config"]``) run again.

    The model and dataset are the bundled sample ``config["model"]["name"]`` and its dataset unless
    given; their fingerprints must match the configuration. With equal package and torch versions
    the new frame has the same ``run_id`` and, on CPU, bit-for-bit the same accuracies.
    ``kwargs`` go to ``sweep`` (executor, workers, progress, stop, device).

    Raises:
        ValueError: fields ``sweep`` cannot reproduce (a page's extra passes, non-default
            strategy parameters), or a model / dataset that is not the configuration's.
    """
    from .run_config import CONFIG_KEYS, dataset_fingerprint, strategy_params
    from .session import architecture_fingerprint, fingerprint

    extra = sorted(set(config) - set(CONFIG_KEYS))
    if extra:
        raise ValueError(f"rerun() repeats plain sweeps; this configuration has extra fields: {', '.join(extra)}.")
    name = config["model"]["name"]
    if model is None or dataset is None:
        if name is None:
            raise ValueError("The configuration names no bundled model: pass model= and dataset=.")
        from .checkpoints import load_sample
        from .data import load_dataset
        from .models import get_spec

        bundled, card = load_sample(name)
        model = bundled if model is None else model
        dataset = dataset if dataset is not None else load_dataset(
            get_spec(name).dataset, seed=card.get("dataset", {}).get("seed", 0))
    if fingerprint(model) != config["model"]["fingerprint"]:
        raise ValueError(f"This model's weights differ from the configuration's ({config['model']['fingerprint']}).")
    architecture = architecture_fingerprint(model)
    if config["model"].get("architecture", architecture) != architecture:  # configurations before it was recorded
        raise ValueError("This model's architecture (its layers or activation) differs from the configuration's.")
    if dataset_fingerprint(dataset) != config["dataset"]["fingerprint"]:
        raise ValueError(f"This dataset differs from the configuration's ({config['dataset']['fingerprint']}).")
    names = [s["name"] for s in config["strategies"]]
    for given in config["strategies"]:
        if given["params"] != strategy_params(given["name"], config["scope"])["params"]:
            raise ValueError(f"Strategy {given['name']!r} ran with parameters {given['params']} that sweep() "
                             "does not set (it uses the registry's defaults).")
    train = {k: (TrainConfig(**config[k]) if config[k] is not None else None) for k in ("finetune", "schedule")}
    return sweep(model, dataset, names, config["levels"], config["seeds"], scope=config["scope"],
                 model_name=name, **train, **kwargs)
