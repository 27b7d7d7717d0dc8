"""K-means weight sharing, the trained quantization of Deep Compression (Han et al. 2016).

The surviving weights of a tensor share ``2**bits - 1`` centroids; code 0 is
*reserved for zero*, so ``levels = [0.0, c_1, ..., c_{2**bits - 1}]`` (``2**bits``
codes in all, one of them spent on the pruned weights, which a sparse format does
not store anyway). At 1 bit the codebook is ``{0, c}`` with ``c`` the mean of the
surviving weights.

Clustering runs on the nonzero (surviving) weights only, in one dimension:

* **linear initialisation**: the centroids start evenly spaced over
  ``[min, max]`` of the surviving weights (``torch.linspace``), the paper's choice
  because it keeps the rare large weights, which matter most, their own centroids;
* **Lloyd iterations**: assign each weight to its nearest centroid (a weight exactly
  halfway between two goes to the lower one), move every centroid to the mean of
  its weights (a centroid with no weights stays where it is), until the assignments
  stop changing or ``max_iter`` rounds have run. Deterministic: no random restarts.

Weights that are exactly zero or masked out get code 0; a nonzero weight is always
assigned to a centroid, so k-means creates no zeros unless a centroid lands on 0.
A tensor with no surviving weight gets the placeholder centroids ``1 .. 2**bits - 1``
(unused; every code is 0). Per tensor only: the codebook is shared by the whole
tensor, as in the paper.
"""

from __future__ import annotations

import torch

from .base import QuantizedTensor, Quantizer


def lloyd_1d(values: torch.Tensor, centroids: torch.Tensor, max_iter: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """1-D Lloyd's k-means from ``centroids``: ``(sorted centroids, assignment of values, rounds)``.

    In one dimension every cluster is a contiguous run of the sorted values, so a round
    costs ``O(k log n)``: the cluster boundaries are ``searchsorted`` of the midpoints
    between neighbouring centroids and the cluster sums are segment sums of the sorted values
    (float64; differences of one prefix sum cancelled: next to a -1e20 weight, 1, 2 and 3 averaged to 0,
    found by an audit). ``rounds`` counts the centroid updates made before the assignment
    stopped changing (or ``max_iter``).
    """
    v = values.to(torch.float64).sort().values
    centroids = centroids.to(torch.float64).sort().values
    n = torch.tensor([v.numel()], device=v.device)
    zero = torch.zeros(1, dtype=torch.int64, device=v.device)
    bounds = None
    rounds = 0
    for _ in range(max_iter):
        # a value exactly halfway between two centroids goes to the lower one
        new = torch.searchsorted(v, (centroids[1:] + centroids[:-1]) / 2, right=True)
        if bounds is not None and torch.equal(new, bounds):
            break
        bounds = new
        starts, ends = torch.cat([zero, bounds]), torch.cat([bounds, n])
        counts = (ends - starts).to(torch.float64)
        sums = torch.segment_reduce(v, "sum", lengths=ends - starts)  # (k,); 0 for an empty cluster
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids).sort().values
        rounds += 1
    mids = (centroids[1:] + centroids[:-1]) / 2
    return centroids, torch.bucketize(values.to(torch.float64), mids), rounds


class KMeansQuantizer(Quantizer):
    name = "kmeans"
    label = "K-means weight sharing"
    min_bits = 1
    max_bits = 8
    per_channel_ok = False

    def __init__(self, bits: int, per_channel: bool = False, *, max_iter: int = 100):
        super().__init__(bits, per_channel)
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"k-means max_iter must be a positive integer, got {max_iter!r}.")
        self.max_iter = max_iter
        self.rounds = 0  # Lloyd rounds the last quantize() ran (for reports and tests)

    def quantize(self, weight: torch.Tensor, mask: torch.Tensor | None = None) -> QuantizedTensor:
        w = self._prepare(weight, mask)
        k = 2**self.bits - 1
        flat = w.reshape(-1)
        alive = flat != 0
        values = flat[alive]
        codes = torch.zeros(flat.shape, dtype=torch.int64, device=w.device)
        if values.numel():
            init = torch.linspace(float(values.min()), float(values.max()), k, dtype=torch.float64, device=w.device)
            centroids, assign, self.rounds = lloyd_1d(values, init, self.max_iter)
            codes[alive] = assign + 1
            centroids = centroids.to(torch.float32)
        else:
            centroids = torch.arange(1, k + 1, dtype=torch.float32, device=w.device)
            self.rounds = 0
        levels = torch.cat([torch.zeros(1, device=w.device), centroids])
        return QuantizedTensor(
            codes=codes.reshape(w.shape),
            levels=levels,
            bits=self.bits,
            method=self.name,
            per_channel=False,
            scale=None,
            zero_point=None,
        )
