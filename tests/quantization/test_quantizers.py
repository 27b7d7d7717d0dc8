"""Quantizers: hand-computed codes and codebooks, torch's fake quantization as the reference,
round trips within half a step, exact zeros, and one clear ValueError for bad input."""

from __future__ import annotations

import pytest
import torch

from sparsity_viz.quantization import QUANTIZERS, QuantizedTensor, Quantizer, get_quantizer
from sparsity_viz.quantization.kmeans import KMeansQuantizer

UNIFORM = ("uniform_symmetric", "uniform_affine")


def _weight(seed: int, shape=(12, 7), shift: float = 0.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g) * (0.05 + 0.3 * seed) + shift


def _bits(name: str) -> range:
    cls = QUANTIZERS[name]
    return range(cls.min_bits, cls.max_bits + 1)


# --- hand-computed cases ----------------------------------------------------------------


def test_symmetric_4bit_by_hand():
    # qmax = 2**3 - 1 = 7, scale = max|w| / 7 = 1.75 / 7 = 0.25 (exact in binary).
    w = torch.tensor([1.75, -0.5, 0.3, 0.1, -1.0, 0.0, 0.9, -0.2, 0.125, -0.375])
    q = get_quantizer("uniform_symmetric", 4).quantize(w)
    # w / scale = 7, -2, 1.2, 0.4, -4, 0, 3.6, -0.8, 0.5 (tie -> even 0), -1.5 (tie -> even -2)
    signed = torch.tensor([7, -2, 1, 0, -4, 0, 4, -1, 0, -2])
    assert q.scale.tolist() == [0.25]
    assert q.zero_point.tolist() == [8]  # codes are unsigned: code = q + 2**(bits-1)
    assert torch.equal(q.codes, signed + 8)
    assert torch.equal(q.levels, torch.arange(-8, 8, dtype=torch.float32) * 0.25)
    assert q.levels.shape == (16,)
    assert int(q.zero_code) == 8 and q.levels[8] == 0
    expected = torch.tensor([1.75, -0.5, 0.25, 0.0, -1.0, 0.0, 1.0, -0.25, 0.0, -0.5])
    assert torch.equal(q.dequantize(), expected)
    assert q.zeros() == 3  # 0.0 stays, 0.1 and 0.125 rounded to zero
    assert int(q.codes.min()) >= 1  # code 0 (-8 * scale) is never used: restricted range


def test_symmetric_4bit_mask_by_hand():
    w = torch.tensor([1.75, -0.5, 0.9, 3.0])
    mask = torch.tensor([True, True, True, False])  # the large 3.0 is pruned: scale ignores it
    q = get_quantizer("uniform_symmetric", 4).quantize(w, mask)
    assert q.scale.tolist() == [0.25]
    assert q.dequantize().tolist() == [1.75, -0.5, 1.0, 0.0]
    assert int(q.codes[3]) == int(q.zero_code)


def test_affine_2bit_by_hand():
    # range [min(w,0), max(w,0)] = [-1, 2]; scale = 3 / 3 = 1; zero_point = round(1) = 1
    w = torch.tensor([[-1.0, 2.0, 0.4, 0.6], [1.5, -0.2, 0.0, 2.0]])
    q = get_quantizer("uniform_affine", 2).quantize(w)
    assert q.scale.tolist() == [1.0] and q.zero_point.tolist() == [1]
    assert torch.equal(q.levels, torch.tensor([-1.0, 0.0, 1.0, 2.0]))
    # round(w) + 1 = 0, 3, 1, 2 | round(1.5)=2 -> 3, 1, 1, 3
    assert q.codes.tolist() == [[0, 3, 1, 2], [3, 1, 1, 3]]
    assert q.dequantize().tolist() == [[-1.0, 2.0, 0.0, 1.0], [2.0, 0.0, 0.0, 2.0]]


def test_affine_positive_only_range_contains_zero():
    w = torch.tensor([0.5, 1.0, 2.0, 3.0])  # lo is clamped to 0: zero_point 0, level 0 exact
    q = get_quantizer("uniform_affine", 2).quantize(w)
    assert q.zero_point.tolist() == [0] and q.scale.tolist() == [1.0]
    assert q.dequantize().tolist() == [0.0, 1.0, 2.0, 3.0]  # 0.5 -> tie -> even 0


def test_affine_1bit_levels():
    q = get_quantizer("uniform_affine", 1).quantize(torch.tensor([-0.25, 1.0, 0.75, 0.2]))
    assert q.levels.tolist() == [0.0, 1.25]  # scale = 1.25, zero_point = round(0.2) = 0
    assert q.dequantize().tolist() == [0.0, 1.25, 1.25, 0.0]


def test_kmeans_2bit_by_hand():
    # surviving nonzeros {1, 2, 3, 4, 5, 6.5, 20}; 2 bits = 3 centroids + the zero code.
    # linear init over [1, 20]: [1, 10.5, 20]; midpoints 5.75, 15.25 -> {1..5}, {6.5}, {20}
    # update -> [3, 6.5, 20]; midpoints 4.75, 13.25 -> {1..4}, {5, 6.5}, {20}
    # update -> [2.5, 5.75, 20]; midpoints 4.125, 12.875 -> same assignment: stop (2 updates)
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.5, 20.0, 0.0], [100.0, 0.0, 0.0, 0.0]])
    mask = torch.ones_like(w, dtype=torch.bool)
    mask[2, 0] = False  # pruned outlier: ignored by the clustering, stays 0
    quantizer = get_quantizer("kmeans", 2)
    q = quantizer.quantize(w, mask)
    assert quantizer.rounds == 2
    assert q.levels.tolist() == [0.0, 2.5, 5.75, 20.0]
    assert q.codes.tolist() == [[1, 1, 1, 1], [2, 2, 3, 0], [0, 0, 0, 0]]
    assert int(q.zero_code) == 0
    assert q.dequantize().tolist() == [[2.5, 2.5, 2.5, 2.5], [5.75, 5.75, 20.0, 0.0], [0.0, 0.0, 0.0, 0.0]]
    assert q.zeros() == 5 and q.scale is None and q.zero_point is None


def test_kmeans_empty_cluster_keeps_its_linear_init():
    # {-1, -0.9, 1, 1.1}: init [-1, 0.05, 1.1], midpoints -0.475, 0.575: the middle centroid
    # gets nothing and stays at 0.05; the others move to the means -0.95 and 1.05.
    q = get_quantizer("kmeans", 2).quantize(torch.tensor([-1.0, -0.9, 1.0, 1.1]))
    torch.testing.assert_close(q.levels, torch.tensor([0.0, -0.95, 0.05, 1.05]))
    assert q.codes.tolist() == [1, 1, 3, 3]


def test_kmeans_1bit_is_zero_and_the_mean():
    q = get_quantizer("kmeans", 1).quantize(torch.tensor([0.0, 1.0, 2.0, 3.0, 6.0]))
    assert q.levels.tolist() == [0.0, 3.0]
    assert q.codes.tolist() == [0, 1, 1, 1, 1]


def test_kmeans_max_iter_stops_early():
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.5, 20.0])
    quantizer = get_quantizer("kmeans", 2, max_iter=1)
    q = quantizer.quantize(w)
    assert quantizer.rounds == 1
    assert q.levels.tolist() == [0.0, 3.0, 6.5, 20.0]  # one update from [1, 10.5, 20]


def test_kmeans_cluster_means_survive_an_extreme_range():
    """Found by an audit: cluster sums as differences of one prefix sum cancelled next to a huge weight, so 1, 2
    and 3 beside -1e20 averaged to 0 (and dequantized to exact zeros); Lloyd's mean of the three is 2."""
    q = get_quantizer("kmeans", 2).quantize(torch.tensor([[-1e20, 1.0, 2.0, 3.0]]))
    assert q.dequantize()[0, 1:].tolist() == [2.0, 2.0, 2.0]
    w = torch.cat([torch.full((1000,), -1e12), 1 + torch.arange(1000) * 6e-8])[None]  # (1, 2000)
    near_one = float(w[0, 1000:].double().mean())
    assert abs(float(get_quantizer("kmeans", 2).quantize(w).dequantize()[0, -1]) - near_one) < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bits", [1, 3, 5])
def test_kmeans_equals_brute_force_lloyd(seed, bits):
    """Reference: textbook Lloyd (argmin over all centroids, per-cluster means) from the linear init."""
    w = _weight(seed, shape=(30, 20))
    w[w.abs() < 0.1] = 0.0
    values = w[w != 0].to(torch.float64)
    k = 2**bits - 1
    c = torch.linspace(float(values.min()), float(values.max()), k, dtype=torch.float64)
    assign = None
    for _ in range(100):
        new = (values[:, None] - c[None, :]).abs().argmin(dim=1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            if (assign == j).any():
                c[j] = values[assign == j].mean()
    q = get_quantizer("kmeans", bits).quantize(w)
    torch.testing.assert_close(q.levels[1:], c.to(torch.float32))
    assert torch.equal(q.codes[w != 0], assign + 1)
    assert bool((q.codes[w == 0] == 0).all())


def test_ternary_by_hand():
    # t = 0.05 * max|w| = 0.05; above: {1.0, 0.5} -> Wp = 0.75; below -t: {-0.3, -0.9} -> Wn = 0.6
    w = torch.tensor([1.0, 0.5, -0.3, 0.04, -0.05, 0.0, -0.9])
    q = get_quantizer("ternary", 2).quantize(w)
    torch.testing.assert_close(q.levels, torch.tensor([-0.6, 0.0, 0.75]))
    assert q.codes.tolist() == [2, 2, 0, 1, 1, 1, 0]
    assert int(q.zero_code) == 1 and q.bits == 2
    assert q.zeros() == 3


def test_ternary_delta_and_per_channel_by_hand():
    w = torch.tensor([[4.0, 1.0, -2.0, 0.5], [-1.0, 0.1, 0.3, 0.2]])
    q = get_quantizer("ternary", 2, per_channel=True, delta=0.25).quantize(w)
    # row 0: t = 1 -> {4} / {-2}, 1.0 is not above t; row 1: t = 0.25 -> {0.3} / {-1}
    torch.testing.assert_close(q.levels, torch.tensor([[-2.0, 0.0, 4.0], [-1.0, 0.0, 0.3]]))
    assert q.codes.tolist() == [[2, 1, 0, 1], [0, 1, 2, 1]]
    assert q.zero_code.tolist() == [1, 1]


@pytest.mark.parametrize("name", ["uniform_affine", "kmeans", "ternary"])
def test_a_finite_float64_weight_beyond_float32_is_named_as_such(name):
    """A float64 weight of 1e300 was called 'infinite' (an audit): it is finite, only not in float32."""
    w = torch.tensor([[1e300, 1.0, -2.0]], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"beyond float32's range \(±3.4e38\): 1 of 3 entries of this float64"):
        get_quantizer(name, 2).quantize(w)
    with pytest.raises(ValueError, match="with infinite values"):
        get_quantizer(name, 2).quantize(torch.tensor([float("inf"), 1.0]))


def test_ternary_levels_of_huge_finite_weights_stay_finite():
    """The means were float32 sums: two weights of 3e38 gave an inf level (an audit); the mean of equal values
    is that value."""
    w = torch.tensor([[3e38, 3e38, -3e38, -3e38, 1.0]])
    for per_channel in (False, True):
        q = get_quantizer("ternary", 2, per_channel=per_channel).quantize(w)
        assert bool(torch.isfinite(q.levels).all())
        torch.testing.assert_close(q.levels.flatten(), torch.tensor([-3e38, 0.0, 3e38]))


# --- torch as the reference -------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("bits", range(2, 9))
def test_affine_equals_torch_fake_quantize(seed, bits):
    w = _weight(seed, shift=0.2 * (seed - 1.5))
    per_tensor = get_quantizer("uniform_affine", bits).quantize(w)
    ref = torch.fake_quantize_per_tensor_affine(
        w, float(per_tensor.scale), int(per_tensor.zero_point), 0, 2**bits - 1
    )
    torch.testing.assert_close(per_tensor.dequantize(), ref, rtol=0, atol=0)
    per_channel = get_quantizer("uniform_affine", bits, per_channel=True).quantize(w)
    assert per_channel.scale.shape == (12,) and per_channel.levels.shape == (12, 2**bits)
    ref = torch.fake_quantize_per_channel_affine(
        w, per_channel.scale, per_channel.zero_point.to(torch.int32), 0, 0, 2**bits - 1
    )
    torch.testing.assert_close(per_channel.dequantize(), ref, rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("bits", range(2, 9))
def test_symmetric_equals_torch_fake_quantize(seed, bits):
    w = _weight(seed)
    qmax = 2 ** (bits - 1) - 1
    per_tensor = get_quantizer("uniform_symmetric", bits).quantize(w)
    ref = torch.fake_quantize_per_tensor_affine(w, float(per_tensor.scale), 0, -qmax, qmax)
    torch.testing.assert_close(per_tensor.dequantize(), ref, rtol=0, atol=0)
    per_channel = get_quantizer("uniform_symmetric", bits, per_channel=True).quantize(w)
    zero = torch.zeros(w.shape[0], dtype=torch.int32)
    ref = torch.fake_quantize_per_channel_affine(w, per_channel.scale, zero, 0, -qmax, qmax)
    torch.testing.assert_close(per_channel.dequantize(), ref, rtol=0, atol=0)


def test_conv_weight_per_channel_equals_torch():
    w = _weight(5, shape=(6, 4, 3, 3))
    q = get_quantizer("uniform_affine", 4, per_channel=True).quantize(w)
    ref = torch.fake_quantize_per_channel_affine(w, q.scale, q.zero_point.to(torch.int32), 0, 0, 15)
    torch.testing.assert_close(q.dequantize(), ref, rtol=0, atol=0)


# --- round trip, per channel, zeros ---------------------------------------------------------


@pytest.mark.parametrize("name", UNIFORM)
@pytest.mark.parametrize("per_channel", [False, True])
def test_round_trip_within_half_a_step(name, per_channel):
    for seed in range(3):
        w = _weight(seed, shift=0.1 * seed)
        for bits in _bits(name):
            q = get_quantizer(name, bits, per_channel).quantize(w)
            step = q.scale.unsqueeze(1) if per_channel else q.scale
            err = (w - q.dequantize()).reshape(w.shape[0] if per_channel else 1, -1).abs()
            assert bool((err <= step / 2 + 1e-6).all()), (name, bits, seed, float(err.max()))
            # and the codes are the integers of (w / scale) + zero_point
            assert torch.equal(q.dequantize(), q.levels[q.codes] if not per_channel
                               else q.levels.gather(1, q.codes.reshape(w.shape[0], -1)).reshape(w.shape))


def test_dequantize_is_codes_minus_zero_point_times_scale():
    w = _weight(1)
    for name in UNIFORM:
        q = get_quantizer(name, 5, per_channel=True).quantize(w)
        expected = (q.codes - q.zero_point.unsqueeze(1)).to(torch.float32) * q.scale.unsqueeze(1)
        assert torch.equal(q.dequantize(), expected)


@pytest.mark.parametrize("name", ["uniform_symmetric", "uniform_affine", "ternary"])
def test_per_channel_equals_per_row_per_tensor(name):
    w = _weight(2, shape=(9, 3, 2))
    bits = 2 if name == "ternary" else 4
    q = get_quantizer(name, bits, per_channel=True).quantize(w)
    for row in range(w.shape[0]):
        alone = get_quantizer(name, bits).quantize(w[row])
        assert torch.equal(q.codes[row], alone.codes)
        assert torch.equal(q.levels[row], alone.levels)
        assert torch.equal(q.dequantize()[row], alone.dequantize())
        if alone.scale is not None:
            assert torch.equal(q.scale[row : row + 1], alone.scale)
            assert torch.equal(q.zero_point[row : row + 1], alone.zero_point)


@pytest.mark.parametrize(
    ("name", "per_channel"),
    [(n, pc) for n, cls in QUANTIZERS.items() for pc in (False, True) if cls.per_channel_ok or not pc],
)
def test_pruned_and_zero_weights_stay_exactly_zero(name, per_channel):
    w = _weight(3, shape=(10, 8))
    w[w.abs() < 0.2] = 0.0
    g = torch.Generator().manual_seed(7)
    mask = torch.rand(w.shape, generator=g) > 0.4
    cls = QUANTIZERS[name]
    for bits in range(cls.min_bits, cls.max_bits + 1):
        q = get_quantizer(name, bits, per_channel).quantize(w, mask)
        deq = q.dequantize()
        zero_codes = q.zero_code.reshape(-1, 1).expand(w.shape) if per_channel else q.zero_code.expand(w.shape)
        assert bool((deq[~mask] == 0).all()) and bool((deq[w == 0] == 0).all())
        assert torch.equal(q.codes[~mask | (w == 0)], zero_codes[~mask | (w == 0)])
        # exact count: zeros = pruned-or-zero entries + the ones rounding created
        created = int(((deq == 0) & mask & (w != 0)).sum())
        assert q.zeros() == int((~mask | (w == 0)).sum()) + created
        assert q.codes.dtype == torch.int64 and q.levels.dtype == torch.float32
        assert int(q.codes.min()) >= 0 and int(q.codes.max()) < q.levels.shape[-1]
        assert bool((q.levels.reshape(-1, q.levels.shape[-1]) == 0).any(dim=1).all())


def test_ternary_makes_most_small_weights_zero():
    w = _weight(0, shape=(50, 40))
    q = get_quantizer("ternary", 2, delta=0.3).quantize(w)
    assert q.zeros() == int((w.abs() <= 0.3 * w.abs().max()).sum())
    assert q.zeros() > w.numel() // 2


def test_fewer_bits_create_more_zeros():
    w = _weight(4, shape=(40, 30))
    zeros = [get_quantizer("uniform_symmetric", b).quantize(w).zeros() for b in range(2, 9)]
    assert zeros == sorted(zeros, reverse=True) and zeros[0] > zeros[-1]
    for b, z in zip(range(2, 9), zeros):
        scale = float(w.abs().max()) / (2 ** (b - 1) - 1)
        assert z == int((w / scale).abs().le(0.5).sum())  # |w / scale| <= 0.5 rounds to 0 (half to even)


@pytest.mark.parametrize("name", list(QUANTIZERS))
def test_empty_and_all_zero_tensors(name):
    cls = QUANTIZERS[name]
    bits = cls.min_bits
    modes = [False, True] if cls.per_channel_ok else [False]
    for per_channel in modes:
        quantizer = get_quantizer(name, bits, per_channel)
        zero = quantizer.quantize(torch.zeros(3, 4))
        assert torch.equal(zero.dequantize(), torch.zeros(3, 4)) and zero.zeros() == 12
        empty = quantizer.quantize(torch.zeros(0, 4) if not per_channel else torch.zeros(2, 0))
        assert empty.dequantize().numel() == 0 and empty.zeros() == 0
        if zero.scale is not None:
            assert bool((zero.scale > 0).all())


def test_quantized_tensor_zero_code_per_channel_and_frozen():
    q = get_quantizer("uniform_affine", 3, per_channel=True).quantize(_weight(1))
    assert torch.equal(q.zero_code, q.zero_point)
    assert isinstance(q, QuantizedTensor)
    with pytest.raises(AttributeError):
        q.bits = 4


def test_registry_contents():
    assert list(QUANTIZERS) == ["uniform_symmetric", "uniform_affine", "kmeans", "ternary"]
    for name, cls in QUANTIZERS.items():
        assert issubclass(cls, Quantizer) and cls.name == name and cls.label
        assert 1 <= cls.min_bits <= cls.max_bits <= 8
    assert not QUANTIZERS["kmeans"].per_channel_ok
    assert isinstance(get_quantizer("kmeans", 3), KMeansQuantizer)


# --- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(QUANTIZERS))
@pytest.mark.parametrize("bits", [0, 33, -1, 9])
def test_bad_bits_raise_with_the_range(name, bits):
    cls = QUANTIZERS[name]
    with pytest.raises(ValueError, match=str(cls.min_bits)):
        get_quantizer(name, bits)


@pytest.mark.parametrize("bits", [2.5, "4", True, None])
def test_non_integer_bits(bits):
    with pytest.raises(ValueError, match="integer number of bits"):
        get_quantizer("uniform_affine", bits)


def test_method_specific_bit_ranges():
    with pytest.raises(ValueError, match="2 to 8 bits"):
        get_quantizer("uniform_symmetric", 1)
    with pytest.raises(ValueError, match="exactly 2 bits"):
        get_quantizer("ternary", 4)
    assert get_quantizer("uniform_affine", 1).bits == 1 and get_quantizer("kmeans", 1).bits == 1


@pytest.mark.parametrize("name", list(QUANTIZERS))
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weights(name, bad):
    w = torch.ones(3, 3)
    w[1, 2] = bad
    with pytest.raises(ValueError, match="NaN" if bad != bad else "infinite"):
        get_quantizer(name, QUANTIZERS[name].min_bits).quantize(w)


def test_other_bad_input():
    with pytest.raises(ValueError, match="Unknown quantization method 'uniform'"):
        get_quantizer("uniform", 4)
    with pytest.raises(ValueError, match="per tensor only"):
        get_quantizer("kmeans", 4, per_channel=True)
    with pytest.raises(ValueError, match="no parameter delta"):
        get_quantizer("kmeans", 4, delta=0.1)
    with pytest.raises(ValueError, match="max_iter"):
        get_quantizer("kmeans", 4, max_iter=0)
    with pytest.raises(ValueError, match="delta"):
        get_quantizer("ternary", 2, delta=1.5)
    with pytest.raises(ValueError, match="Mask shape"):
        get_quantizer("uniform_affine", 4).quantize(torch.ones(3, 3), torch.ones(3, dtype=torch.bool))


def test_grid_levels_leave_out_codes_the_symmetric_grid_never_uses():
    from sparsity_viz.quantization import get_quantizer

    q = get_quantizer("uniform_symmetric", 4).quantize(torch.tensor([[-1.0, 0.25, 0.5, 1.0]]))
    assert q.levels.numel() == 16 and q.grid_levels.numel() == 15  # -7..7 steps of 1/7
    assert float(q.grid_levels.min()) == -1.0 and float(q.grid_levels.max()) == 1.0
    assert set(q.codes.flatten().tolist()) <= set(range(q.code_range[0], q.code_range[1] + 1))
    affine = get_quantizer("uniform_affine", 2).quantize(torch.tensor([0.0, 1.0]))
    assert affine.grid_levels.numel() == 4


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize("shape", [(0, 3), (0,), (3, 0)])
def test_empty_weights_quantize_to_empty_codes(name, shape):
    """A layer with no rows (or no entries per row) has nothing to quantize: empty codes, no reshape error."""
    for per_channel in (False, True):
        try:
            q = get_quantizer(name, bits=4, per_channel=per_channel)
        except (TypeError, ValueError):
            continue  # a quantizer without per-channel grids
        out = q.quantize(torch.empty(shape))
        assert out.dequantize().shape == torch.Size(shape)


@pytest.mark.parametrize("name", ["uniform_symmetric", "uniform_affine"])
@pytest.mark.parametrize("per_channel", [False, True])
def test_a_weight_below_the_smallest_normal_float_keeps_its_zeros(name, per_channel):
    """Found by an audit: a peak below ~1.5e-38 gave a subnormal scale, 1 / scale = inf, and an exact zero's code
    0 * inf = NaN (cast to INT64_MIN: IndexError in dequantize). The scale is now at least the smallest normal float."""
    from sparsity_viz.quantization.base import MIN_SCALE

    w = torch.tensor([[0.5, -0.25, 0.0, 0.1], [0.0, 1e-39, 0.0, -5e-40]])  # the second row: tiny survivors only
    for weight in (w, w[1:]):
        qt = get_quantizer(name, 8, per_channel=per_channel).quantize(weight)
        assert bool((qt.scale >= MIN_SCALE).all()) and bool(torch.isfinite(1.0 / qt.scale).all())
        deq = qt.dequantize()
        assert bool(torch.isfinite(deq).all()) and bool((deq[weight == 0] == 0).all())
        assert int(qt.codes.min()) >= 0 and int(qt.codes.max()) < qt.levels.shape[-1]
        assert float((deq - weight).abs().max()) <= float(qt.scale.max()) / 2 + 1e-45  # within half a step
    full = get_quantizer(name, 8, per_channel=True).quantize(w)  # the ordinary row is as torch quantizes it
    torch.testing.assert_close(full.dequantize()[0], get_quantizer(name, 8).quantize(w[:1]).dequantize()[0])


@pytest.mark.parametrize("per_channel", [False, True])
def test_affine_range_wider_than_float32_stays_finite(per_channel):
    """Found by an audit: hi - lo = 6e38 overflowed to inf, the scale was inf and every level NaN (zeros included)."""
    w = torch.tensor([[3e38, -3e38, 1.0, 0.0], [2.0, -1.0, 0.0, 0.5]])
    qt = get_quantizer("uniform_affine", 8, per_channel=per_channel).quantize(w, w != 1.0)  # 1.0 masked out
    deq = qt.dequantize()
    assert bool(torch.isfinite(qt.scale).all()) and bool(torch.isfinite(deq).all())
    assert float(deq[0, 2]) == 0.0 and float(deq[0, 3]) == 0.0  # masked and zero entries stay exactly zero
    step = float(qt.scale[0])
    assert abs(float(deq[0, 0]) - 3e38) <= step and abs(float(deq[0, 1]) + 3e38) <= step
    if per_channel:  # the other channel is untouched: the same as torch
        scale, zp = qt.scale[1:], qt.zero_point[1:]
        ref = torch.fake_quantize_per_channel_affine(w[1:], scale, zp.int(), 0, 0, 255)
        torch.testing.assert_close(deq[1:], ref, rtol=0, atol=0)


@pytest.mark.parametrize("bits", [1, 3])
@pytest.mark.parametrize("per_channel", [False, True])
def test_affine_range_beyond_a_coarse_grid_is_refused(bits, per_channel):
    """Found by an audit: at 1-3 bits a 6e38 range puts a used level past float32 (1 bit: NaN everywhere, 0 included)."""
    w = torch.tensor([[3e38, -3e38, 1.0, 0.0], [2.0, -1.0, 0.0, 0.5]])
    with pytest.raises(ValueError, match=rf"on a {bits}-bit grid cannot hold these weights.*more bits"):
        get_quantizer("uniform_affine", bits, per_channel=per_channel).quantize(w)
    for wider in range(1, 9):  # wherever a grid is accepted, every dequantized weight is finite
        try:
            deq = get_quantizer("uniform_affine", wider, per_channel=per_channel).quantize(w).dequantize()
        except ValueError:
            continue
        assert bool(torch.isfinite(deq).all())
