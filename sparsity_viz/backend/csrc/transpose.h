// Blocked transposes between batch-major (B, F) and feature-major (F, B) activations, shared by the
// native extensions (sparse_kernels.cpp, int8_kernels.cpp). Header only; the build copies it beside
// each source and hashes it into the build key (kernels.build_key), so editing it rebuilds them.
#pragma once
#if defined(__AVX__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace {

#if defined(__AVX__)
// 8 x 8 block transpose in AVX registers: src rows of stride ls -> the 8 rows d[0..7]
inline void transpose8(const float* src, int64_t ls, float* const* d) {
  __m256 r0 = _mm256_loadu_ps(src + 0 * ls), r1 = _mm256_loadu_ps(src + 1 * ls);
  __m256 r2 = _mm256_loadu_ps(src + 2 * ls), r3 = _mm256_loadu_ps(src + 3 * ls);
  __m256 r4 = _mm256_loadu_ps(src + 4 * ls), r5 = _mm256_loadu_ps(src + 5 * ls);
  __m256 r6 = _mm256_loadu_ps(src + 6 * ls), r7 = _mm256_loadu_ps(src + 7 * ls);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
  __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
  __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
  __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(d[0], _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(d[1], _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(d[2], _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(d[3], _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(d[4], _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(d[5], _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(d[6], _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(d[7], _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

// Where the source features of a gathering transpose go: kept input i reads source feature keep[i] into row i.
// Held as the list of 8-feature source blocks that hold a kept feature, each with its 8 destination rows (-1:
// nowhere), so a transpose visits only those blocks and tests no feature: testing a per-feature map mispredicted
// on the scattered kept pixels of a pruned first layer, and LeNet-300-100 at 99 % spent more time gathering its
// input than in its three layers. Built from the kept columns sorted (memory in the kept count, whatever the
// largest index); a feature kept twice leaves it empty (the caller gathers with index_select instead).
struct Scatter {
  std::vector<int64_t> block;  // first source feature of each block with a kept feature (multiples of 8, increasing)
  std::vector<int32_t> rows;   // 8 per block: the destination row of each of its features, or -1
  Scatter() = default;
  Scatter(const int64_t* keep, int64_t n) {
    std::vector<std::pair<int64_t, int32_t>> by_col(n);  // (source feature, destination row)
    for (int64_t i = 0; i < n; ++i) by_col[i] = {keep[i], static_cast<int32_t>(i)};
    std::sort(by_col.begin(), by_col.end());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t f = by_col[i].first;
      if (i > 0 && f == by_col[i - 1].first) {  // kept twice
        block.clear();
        rows.clear();
        return;
      }
      if (block.empty() || f / 8 * 8 != block.back()) {
        block.push_back(f / 8 * 8);
        rows.insert(rows.end(), 8, -1);
      }
      rows[rows.size() - 8 + f % 8] = by_col[i].second;
    }
  }
  bool empty() const { return block.empty(); }
};

// (B, Fx) row-major (row stride ls) -> feature-major rows (stride ld), source features [f0, f1), 8 x 8 blocks:
// feature f goes to row f of dst (sc null), or to its row in sc, or nowhere (one pass over X, where torch's
// index_select of the kept columns and a transpose after it were about a third of LeNet-300-100's whole call).
// Any f0 and f1 (a thread's share of the features): blocks cut by them run their features in range one by one.
constexpr int64_t TRANSPOSE_FEATURES = 64;

inline void transpose_range(const float* src, int64_t ls, int64_t B, const Scatter* sc, float* dst, int64_t ld,
                            int64_t f0, int64_t f1) {
  // the gathered source blocks overlapping [f0, f1): [k0, k1) of sc->block (the first may start before f0)
  int64_t k0 = 0, k1 = 0;
  if (sc) {
    k0 = std::lower_bound(sc->block.begin(), sc->block.end(), f0 / 8 * 8) - sc->block.begin();
    k1 = std::lower_bound(sc->block.begin(), sc->block.end(), f1) - sc->block.begin();
  }
  // the features of block k inside [f0, f1): [lo, hi)
  auto span = [&](int64_t k) { return std::make_pair(std::max(f0, sc->block[k]), std::min(f1, sc->block[k] + 8)); };
  auto one = [&](int64_t b, int64_t f, float* r) {  // one value: feature f of sample b into row r (or nowhere)
    if (r) r[b] = src[b * ls + f];
  };
  int64_t b8 = 0;  // samples [0, b8) in blocks of 8
#if defined(__AVX__)
  b8 = B / 8 * 8;
  float sink[8];  // where a dead feature's 8 values go
  if (sc) {
    // every kept block for 8 samples at a time: 8 source rows read front to back (see below)
    for (int64_t b = 0; b < b8; b += 8)
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t f = sc->block[k];
        const int32_t* rw = sc->rows.data() + 8 * k;
        const auto [lo, hi] = span(k);
        if (lo == f && hi == f + 8) {
          float* d[8];
          for (int j = 0; j < 8; ++j) d[j] = rw[j] >= 0 ? dst + rw[j] * ld + b : sink;
          transpose8(src + b * ls + f, ls, d);
        } else {
          for (int64_t g = lo; g < hi; ++g)
            for (int64_t i = 0; i < 8; ++i) one(b + i, g, rw[g - f] >= 0 ? dst + rw[g - f] * ld : nullptr);
        }
      }
  } else {
    // TRANSPOSE_FEATURES features at a time down every sample: the block's destination rows fill up
    // front to back (a few pages at a time); all features for 8 samples at a time instead wrote into
    // every destination row (and page) per block, 4x slower at batch 1,024. Into a chain chunk's compact
    // block (rows of <= 64 samples) it is the other way round: all features for 8 samples at a time read
    // 8 source rows front to back, which the hardware prefetcher follows from L3, while the destination
    // (features x 256 B) stays in L2; LeNet-300-100's chain at batch 1,024 ran in 0.88-0.93x the time
    // (inputs out of L2, as a new batch is; benchmarks/kernel_ab.py --chains)
    const int64_t fstep = ld <= 64 ? std::max<int64_t>(f1 - f0, 1) : TRANSPOSE_FEATURES;
    for (int64_t fb = f0; fb < f1; fb += fstep) {
      const int64_t fe = std::min(f1, fb + fstep);
      for (int64_t b = 0; b < b8; b += 8) {
        int64_t f = fb;
        for (; f + 8 <= fe; f += 8) {
          float* d[8];
          for (int j = 0; j < 8; ++j) d[j] = dst + (f + j) * ld + b;
          transpose8(src + b * ls + f, ls, d);
        }
        for (; f < fe; ++f)
          for (int64_t i = 0; i < 8; ++i) dst[(f * ld) + b + i] = src[(b + i) * ls + f];
      }
    }
  }
#endif
  for (int64_t b = b8; b < B; ++b) {
    if (!sc) {
      for (int64_t f = f0; f < f1; ++f) one(b, f, dst + f * ld);
      continue;
    }
    for (int64_t k = k0; k < k1; ++k)
      for (auto [g, hi] = span(k); g < hi; ++g) {
        const int32_t r = sc->rows[8 * k + g - sc->block[k]];
        one(b, g, r >= 0 ? dst + r * ld : nullptr);
      }
  }
}

}  // namespace
