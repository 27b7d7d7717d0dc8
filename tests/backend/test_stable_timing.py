"""``bench.interleaved_ratios``: rounds until each ratio's interquartile range is within ±5 %, or the time cap.

The clock is replaced by a fake one that each contender advances by a known amount, so the
ratios, quartiles, round counts and the cap are hand-computable (no timed assertions).
"""

from __future__ import annotations

import itertools
import types

import pytest

from sparsity_viz.backend import bench
from sparsity_viz.backend.speed_report import (SpeedSettings, interval_words, measure_speed, ratio_intervals,
                                               unsettled, unsettled_points)
from sparsity_viz.checkpoints import load_sample
from sparsity_viz.pruning import prune


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def costs(self, *seconds: float):
        """A contender whose successive calls take ``seconds`` in turn (cycling).

        Each burst starts with an untimed call, so with one call per burst a contender's timed calls are every
        other call: ``costs(a, a, b, b)`` is timed a, b, a, b, ...
        """
        cycle = itertools.cycle(seconds)

        def fn():
            self.now += next(cycle)
        return fn


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(bench, "time", types.SimpleNamespace(perf_counter=c))  # this module only
    return c


def test_steady_contenders_stop_after_the_minimum_rounds(clock):
    out = bench.interleaved_ratios({"dense": clock.costs(0.004), "csr": clock.costs(0.001)}, "dense", rounds=7)
    assert out["csr"]["ratio"] == pytest.approx(0.25) and out["csr"]["rounds"] == 7
    assert out["csr"]["ratio_q25"] == pytest.approx(0.25) == out["csr"]["ratio_q75"]
    assert out["csr"]["stable"] and not out["csr"]["capped"]
    assert out["dense"]["ratio"] == 1.0 and out["dense"]["median_s"] == pytest.approx(0.004)


def test_a_noisy_ratio_runs_to_the_cap_and_says_so(clock):
    # csr's timed calls alternate 2 ms / 3 ms against a steady 4 ms dense: ratios 0.5 / 0.75, never within ±5 %
    out = bench.interleaved_ratios({"dense": clock.costs(0.004), "csr": clock.costs(0.002, 0.002, 0.003, 0.003)},
                                   "dense", rounds=5, time_cap_s=0.5)
    r = out["csr"]
    assert r["capped"] and not r["stable"]
    assert out["dense"]["stable"] and not out["dense"]["capped"]  # the reference is never the one that did not settle
    assert r["ratio_q25"] == pytest.approx(0.5) and r["ratio_q75"] == pytest.approx(0.75)
    # each round costs 2 x (4 + 2.5) ms on average (untimed and timed calls): the cap of 0.5 s ends it after ~38
    assert 34 <= r["rounds"] <= 40


def test_a_ratio_that_settles_late_stops_when_it_settles(clock):
    # 10 noisy rounds (0.5 / 0.75), then steady 0.5: stable once the steady ones dominate the quartiles
    csr = clock.costs(*([0.002, 0.002, 0.003, 0.003] * 5 + [0.002] * 2000))
    out = bench.interleaved_ratios({"dense": clock.costs(0.004), "csr": csr}, "dense", rounds=5, time_cap_s=100)
    r = out["csr"]
    assert r["stable"] and not r["capped"] and r["ratio"] == pytest.approx(0.5)
    assert 10 < r["rounds"] < 60


def test_each_burst_starts_with_an_untimed_call(clock):
    """A contender whose first call of a burst is slow (cold caches) is timed on its warm calls only."""
    # the first call sizes the bursts (1 ms: one call each); then each round's untimed call takes 10 ms, the timed 1 ms
    out = bench.interleaved_ratios({"dense": clock.costs(0.004), "csr": clock.costs(0.001, 0.010)}, "dense",
                                   rounds=5, rel_iqr=None)
    assert out["csr"]["ratio"] == pytest.approx(0.25) and out["csr"]["median_s"] == pytest.approx(0.001)


def test_fixed_rounds_without_a_target(clock):
    out = bench.interleaved_ratios({"dense": clock.costs(0.004), "csr": clock.costs(0.002, 0.003)}, "dense",
                                   rounds=4, rel_iqr=None)
    assert out["csr"]["rounds"] == 4 and not out["csr"]["capped"]


def test_the_asked_rounds_all_run_whatever_the_cap(clock):
    """Found by an audit: the 10 s cap stopped "exactly 21 rounds" at 7 for a slow layer, unflagged, and on the
    Speed page it stopped short of "at least this many rounds"."""
    slow = {"dense": clock.costs(0.4), "csr": clock.costs(0.1)}  # a round costs ~1 s, the cap is 2 s
    assert bench.interleaved_ratios(slow, "dense", rounds=21, rel_iqr=None, time_cap_s=2)["csr"]["rounds"] == 21
    out = bench.interleaved_ratios(slow, "dense", rounds=9, time_cap_s=2)["csr"]
    assert out["rounds"] == 9 and out["stable"] and not out["capped"]
    noisy = {"dense": clock.costs(0.4), "csr": clock.costs(0.2, 0.2, 0.3, 0.3)}  # never settles
    out = bench.interleaved_ratios(noisy, "dense", rounds=6, time_cap_s=2)["csr"]
    assert out["rounds"] == 6 and out["capped"] and not out["stable"]  # the cap had passed: no round past the asked


def test_ratio_between_two_contenders_is_taken_round_by_round(clock):
    """Found by an audit: sparse_conv.py's "fusion only" divided two medians, where every other ratio is the median
    of the per-round ratios; paired rounds give another answer when load moves between rounds."""
    out = bench.interleaved_ratios({"dense": clock.costs(0.004), "a": clock.costs(0.002), "b": clock.costs(0.001)},
                                   "dense", rounds=5, rel_iqr=None)
    assert [len(v["round_s"]) for v in out.values()] == [5, 5, 5]
    assert bench.ratio_between(out, "a", "b") == pytest.approx(2.0)
    rounds = {"full": [1, 2, 3, 4, 5], "fused": [5, 4, 3, 2, 6]}  # medians 3 and 4; per-round 5, 2, 1, 0.5, 1.2
    assert bench.ratio_between({k: {"round_s": v} for k, v in rounds.items()}, "fused", "full") == pytest.approx(1.2)


@pytest.mark.parametrize("kw,match", [({"rounds": 0}, "rounds"), ({"time_cap_s": 0}, "time_cap_s"),
                                      ({"rel_iqr": -0.1}, "rel_iqr")])
def test_bad_settings_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        bench.interleaved_ratios({"dense": lambda: None}, "dense", **kw)


def test_the_reference_must_be_timed():
    with pytest.raises(ValueError, match="reference 'dense' is not among"):
        bench.interleaved_ratios({"csr": lambda: None}, "dense")


@pytest.fixture(scope="module")
def pruned_moons():
    return prune(load_sample("moons_mlp")[0], "magnitude", 0.8).model


def test_speed_report_carries_the_interval_of_every_ratio(pruned_moons):
    settings = SpeedSettings(batches=(1, 8), formats=("dense", "csr-torch", "auto"), repeats=3, layer="fc1",
                             time_cap_s=1.0)
    report = measure_speed(pruned_moons, settings)
    iv = ratio_intervals(report.bench)
    assert set(iv["format"]) == {"csr-torch", "auto"} and sorted(iv["batch"].unique()) == [1, 8]
    assert (iv["ratio_q25"] <= iv["ratio_dense"] + 1e-12).all() and (iv["ratio_dense"] <= iv["ratio_q75"] + 1e-12).all()
    assert (iv["rounds"] >= 3).all()
    for r in iv.itertuples():  # stable means: the interval is within ±5 % of the median
        assert bool(r.stable) == (r.ratio_q75 <= 1.05 * r.ratio_dense and r.ratio_q25 >= 0.95 * r.ratio_dense)
        assert bool(r.capped) == (not r.stable)  # a settled ratio was ticked "stopped by the time cap" too (an audit)
    assert unsettled(report.bench) == [f"{r.format} at batch {r.batch}" for r in iv.itertuples() if not r.stable]
    row = iv.iloc[0]
    assert interval_words(report.bench, row["batch"], row["format"]) == (
        f"interquartile range {row['ratio_q25']:.2f}–{row['ratio_q75']:.2f}×, {int(row['rounds'])} rounds")
    assert {"ratio_q25", "ratio_q75", "rounds", "stable", "capped"} <= set(report.curves.columns)
    curves = report.curves[(report.curves["batch"] == 8) & (report.curves["format"] != "dense")]
    assert unsettled_points(report.curves, 8) == (int((~curves["stable"].astype(bool)).sum()), len(curves))
    assert len(curves) == 2 * 7  # csr-torch and csr-native (or its skip row has no interval) over 7 sparsities


def test_round_order_gives_every_contender_every_predecessor():
    """Each round a reproducible shuffle: over 60 rounds of 4 contenders, every ordered pair (a right after b) occurs."""
    from sparsity_viz.backend.bench import round_order

    names = ["dense", "csr", "ours", "one"]
    orders = [round_order(names, r) for r in range(60)]
    assert all(sorted(o) == sorted(names) for o in orders) and orders == [round_order(names, r) for r in range(60)]
    pairs = {(o[i], o[i + 1]) for o in orders for i in range(len(o) - 1)}
    assert pairs == {(a, b) for a in names for b in names if a != b}
    assert len({tuple(o) for o in orders}) > len(names)  # not just the rotations of one order


def test_int8_interleaved_medians_run_exactly_their_rounds(clock):
    """``int8.interleaved_medians`` is ``interleaved_ratios`` over a fixed number of rounds: no time cap cuts it short."""
    from sparsity_viz.backend import int8

    calls = {"slow": 0, "fast": 0}

    def costed(name, seconds):
        def fn():
            calls[name] += 1
            clock.now += seconds
        return fn

    out = int8.interleaved_medians({"slow": costed("slow", 1.0), "fast": costed("fast", 0.25)}, rounds=30)
    assert out == {"slow": pytest.approx(1.0), "fast": pytest.approx(0.25)}
    # one call sizes each burst (one call: 1 s and 0.25 s are above 2 ms), then per round an untimed and a timed one;
    # 30 rounds take 75 s of fake time, far past interleaved_ratios' default cap of 10 s
    assert calls == {"slow": 1 + 2 * 30, "fast": 1 + 2 * 30}
