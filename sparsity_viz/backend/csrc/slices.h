// A CSR layer for one sample at a time, by 16-row slices and 32-feature blocks (SELL-16 with the inputs in
// registers), shared by the fp32 and the int8 extension (sparse_kernels.cpp, int8_kernels.cpp). Header only; the
// build copies it beside each source and hashes it into the build key (kernels.build_key).
//
// The 16 lanes of a step are the 16 rows of a slice, each holding its next nonzero in the block (or padding); a
// step is one permute of the block's 32 inputs, held in two registers, by 16 byte indices and one FMA into the
// slice's 16 sums. Row by row with a gather, every nonzero cost 2-3 loads (column, input, value), and the loads
// bound it; here a step's 16 lanes cost two. Padding lanes (a row with fewer nonzeros in the block than the
// slice's longest) are masked out of the FMA, so an input that only pruned weights touch never reaches an output
// (0 x NaN). Built on a layer's first call with fewer than 4 samples, from a copy of the values (as the column
// panels are: a layer's tensors are not to be edited in place once a chain holds them). Not used where a call's
// fixed work, one visit per 16 rows and 32 inputs plus a copy of the inputs, would exceed the nonzeros (wide layers
// that use few of their inputs: the row path touches only the nonzeros; checked before anything is built), where
// the padding would exceed SLICE_MAX_SLOTS slots per nonzero (very sparse, scattered rows), nor where the slices
// would take more than SLICE_MAX_BYTES (half a 1 MB L2): an fp32 slot is 5 bytes and about half the slots are padding at 90 %, so fp32
// slices move ~10 bytes per nonzero where the CSR moves 6, and for layers that come from L3 or memory the bytes
// decide. (The 784-2048-2048-10 MLP's layers, 1.6 and 2.7 MB of fp32 slices, each ran faster on its own, but the
// whole model at batch 1 ran slower, timed between dense calls that evict it; docs/backend.md.)
#pragma once
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <vector>

#include "align.h"

namespace {

constexpr int64_t SLICE_MAX_SLOTS = 8;
constexpr int64_t SLICE_MAX_BYTES = 512 << 10;

// VT: float (fp32 weights) or int8_t (int8 codes; the caller applies the row scales to the sums).
template <typename VT>
struct Slices {
  std::once_flag once;
  bool usable = false;
  int64_t nb = 0;              // 32-feature blocks
  std::vector<int32_t> start;  // (slices * nb + 1): block k of slice s holds steps start[s * nb + k] ..< start[... + 1]
  std::vector<VT> store;       // holds val
  const VT* val = nullptr;     // (steps, 16) from a 64-byte boundary (a vector's data is only 16-byte aligned): lane
                               // l = row 16 s + l; 0 in padding
  std::vector<uint8_t> idx;    // (steps, 16): 0x80 | feature within the block for a nonzero, 0 for padding
};

// Fill S from a CSR (out, in) with validated row pointers and columns; leaves S.usable false over the limits.
template <typename VT, typename IT>
void build_slices(const int32_t* rowptr, const IT* col, const VT* vals, int64_t out, int64_t in, Slices<VT>& S) {
  const int64_t nb = (in + 31) / 32, nsl = (out + 15) / 16, nnz = rowptr[out];
  S.nb = nb;
  if (nsl * nb + in > nnz) return;  // the fixed work of a call would exceed the nonzeros: row by row instead
  const int64_t slot_bytes = static_cast<int64_t>(sizeof(VT)) + 1;
  const int64_t max_steps = std::min(SLICE_MAX_SLOTS * nnz, SLICE_MAX_BYTES / slot_bytes) / 16;
  std::vector<int32_t> cnt(16 * nb);  // per (lane, block): nonzeros, then the next free step
  std::vector<int32_t> start(nsl * nb + 1);
  int64_t steps = 0;
  for (int64_t s = 0; s < nsl; ++s) {
    std::fill(cnt.begin(), cnt.end(), 0);
    for (int64_t l = 0; l < 16 && 16 * s + l < out; ++l)
      for (int32_t p = rowptr[16 * s + l]; p < rowptr[16 * s + l + 1]; ++p) {
        if (col[p] < 0 || col[p] >= in) return;  // edited after the chain checked it: never write out of bounds
        ++cnt[l * nb + col[p] / 32];
      }
    for (int64_t k = 0; k < nb; ++k) {
      int32_t most = 0;
      for (int64_t l = 0; l < 16; ++l) most = std::max(most, cnt[l * nb + k]);
      start[s * nb + k] = static_cast<int32_t>(steps);
      steps += most;
    }
    if (steps > max_steps) return;  // over the slot or byte limit: row by row instead
  }
  start[nsl * nb] = static_cast<int32_t>(steps);  // steps <= nnz: every step holds a nonzero
  VT* val = aligned64(S.store, 16 * steps);  // zeros: the padding
  S.val = val;
  S.idx.assign(16 * steps, 0);
  for (int64_t s = 0; s < nsl; ++s) {
    std::fill(cnt.begin(), cnt.end(), 0);
    for (int64_t l = 0; l < 16 && 16 * s + l < out; ++l)
      for (int32_t p = rowptr[16 * s + l]; p < rowptr[16 * s + l + 1]; ++p) {
        const int64_t k = col[p] / 32, t = start[s * nb + k] + cnt[l * nb + k]++;
        val[16 * t + l] = vals[p];
        S.idx[16 * t + l] = static_cast<uint8_t>(0x80 | (col[p] % 32));
      }
  }
  S.start = std::move(start);
  S.usable = true;
}

// S built on first use (thread-safe) from the layer's CSR; nullptr where there is no S or it is not usable.
template <typename VT, typename IT>
inline const Slices<VT>* ready_slices(Slices<VT>* S, const int32_t* rowptr, const IT* col, const VT* vals, int64_t out,
                                      int64_t in) {
  if (!S) return nullptr;
  std::call_once(S->once, [&] { build_slices(rowptr, col, vals, out, in, *S); });
  return S->usable ? S : nullptr;
}

// One sample's inputs (feature f at xb[f * ldx]) in a thread's scratch: contiguous, 64-byte aligned, zero-padded to
// nb whole blocks, as slice_sums reads them.
inline const float* slice_input(const float* xb, int64_t ldx, int64_t in, int64_t nb) {
  static thread_local std::vector<float> buf;
  float* x = aligned64(buf, 32 * nb);
  for (int64_t f = 0; f < in; ++f) x[f] = xb[f * ldx];
  std::fill(x + in, x + 32 * nb, 0.0f);
  return x;
}

#if defined(__AVX512BW__) && defined(__AVX512VL__)
inline __m512 slice_values(const float* v) { return _mm512_load_ps(v); }
inline __m512 slice_values(const int8_t* v) {  // 16 codes widened to fp32
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(v))));
}

// The 16 sums of slice s (its rows 16 s .. 16 s + 15) for one sample x: (32 * nb,) floats, 64-byte aligned,
// zero-padded past the layer's inputs. Lanes past the layer's rows hold 0.
template <typename VT>
inline __m512 slice_sums(const Slices<VT>& S, const float* x, int64_t s) {
  __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  const int64_t nb = S.nb;
  const int32_t* st = S.start.data() + s * nb;
  for (int64_t k = 0; k < nb; ++k) {
    const int32_t t0 = st[k], t1 = st[k + 1];
    if (t0 == t1) continue;
    const __m512 x0 = _mm512_load_ps(x + 32 * k), x1 = _mm512_load_ps(x + 32 * k + 16);  // (32,) inputs
    const VT* v = S.val + 16 * static_cast<int64_t>(t0);
    const uint8_t* ix = S.idx.data() + 16 * static_cast<int64_t>(t0);
    auto step = [&](__m512& acc, int64_t o) {
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ix + 16 * o));  // (16,) bytes
      const __m512 xv = _mm512_permutex2var_ps(x0, _mm512_cvtepu8_epi32(b), x1);  // low 5 bits pick the input
      acc = _mm512_mask3_fmadd_ps(slice_values(v + 16 * o), xv, acc, _mm_movepi8_mask(b));  // padding: kept
    };
    int32_t t = t0;
    for (; t + 4 <= t1; t += 4, v += 64, ix += 64) {  // 4 sums in flight (FMA latency)
      step(a[0], 0);
      step(a[1], 1);
      step(a[2], 2);
      step(a[3], 3);
    }
    for (; t < t1; ++t, v += 16, ix += 16) step(a[0], 0);
  }
  return _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
}
#endif

}  // namespace
