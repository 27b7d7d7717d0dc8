// Native CPU kernels for sparsity_viz's sparse backend.
//
// Activations are stored features x batch ("feature-major"): X is (in, B), row-major,
// so one weight touches a contiguous run of samples. Each output row is computed
// for a tile of W samples held in registers (W = 64, 32, 16, 8, 4, then single samples), with the
// bias and ReLU fused into the store. The same template runs CSR rows (int16 or
// int32 column indices, int32 row pointers) and dense rows (column = k), so a whole
// MLP can run in one native call (`chain_forward`) at any batch size.
// Column panels grouped by count (`panelize`, sample tiles of 64 or 32): a tile of X is walked
// panel by panel (`pw` <= 256 features, `ops.panel_width`: <= 224), each panel repacked just before its rows
// run into a contiguous (pw, 64) buffer (56 KB at most: in L1 on a 48 KB L1d for pw <= 160, mostly in L2 on a
// 32 KB one), the partial sums between panels kept in a
// contiguous (out, 64) buffer; within a panel the rows are sorted by their number of nonzeros there, so
// a group of rows with the same count runs a loop of one fixed trip count, three rows at a
// time (12 accumulator chains; 32-sample tiles: 4 rows, 8 chains), with no indexed addressing in the FMAs,
// and each nonzero's value broadcast by a lane permute of 16 values loaded at once (not a load of its own).
// Calls of 1-3 samples through a kept Chain run a CSR layer by 16-row slices instead (Slices, slice_rows).
// Work is split over chunks of output rows (or of sample tiles, for layers with few rows)
// through at::parallel_for on torch's own OpenMP pool: the extension is compiled with
// -fopenmp, and the loader reuses the libgomp.so.1 torch already loaded (one pool; see
// docs/backend.md#build). Chunks are claimed from an atomic counter, so a thread whose
// core is busy with another process and starts late finds less (or nothing) left to do.
#include "torch_lite.h"
#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <tuple>
#include <atomic>
#include <mutex>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "align.h"
#include "vec.h"
#include "slices.h"
#include "transpose.h"

namespace {

struct Layer {
  const int32_t* rowptr;  // (out + 1,) or nullptr for dense
  const void* col;        // (nnz,) int16 or int32, or nullptr for dense
  bool col16;
  const float* val;       // (nnz,) for CSR, (out, in) row-major for dense
  const float* bias;      // (out,) or nullptr
  int64_t out, in;
  bool relu;
  // optional (out, B) float start values with row stride ldb (`csr_onto`): y = relu(base + W x [+ bias]);
  // never together with grouped panels
  const float* base = nullptr;
  int64_t ldb = 0;
  // column panels grouped by count (optional, from `panelize`): the same nonzeros by panels
  // of `pw` (<= 256) input features; in panel q, groups gstart[q] .. gstart[q + 1] - 1, group g
  // being gnr[g] rows (grows, in order) of gcnt[g] nonzeros each, row after row; poff holds
  // byte offsets into a repacked (pw, 64) float panel (panel-local column * 256), pval the
  // values. Panel 0 and the last panel list every row (bias, ReLU). Used for 64- and 32-sample tiles.
  const int32_t* gstart = nullptr;
  const int32_t* gcnt = nullptr;
  const int32_t* gnr = nullptr;
  const int32_t* grows = nullptr;
  const uint16_t* poff = nullptr;
  const float* pval = nullptr;
  int64_t pw = 0, npan = 0;
  // single-sample calls (B < 4) of a CSR layer in a kept Chain: the same nonzeros by 16-row slices, built on first
  // use (slices.h); nullptr elsewhere (one-shot calls, csr_onto), where single samples run row_one
  Slices<float>* slices = nullptr;
};

// One output row r for the W = NV * lanes(V) samples starting at b0. U independent
// accumulator sets take consecutive nonzeros, so U * NV FMA chains are in flight
// (an FMA has ~4 cycles latency and two issue ports: 8 chains keep it busy).
template <typename V, int NV, bool DENSE, typename IT>
inline void row_tile(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t r, int64_t b0) {
  constexpr int LANES = sizeof(V) / sizeof(float);
  constexpr int U = NV >= 8 ? 1 : 8 / NV;
  V acc[U][NV];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[u][j] = V{};
  const float* xb = X + b0;
  int64_t p0, p1;
  const IT* c = nullptr;
  const float* w;
  if constexpr (DENSE) {
    p0 = 0;
    p1 = L.in;
    w = L.val + r * L.in;
  } else {
    p0 = L.rowptr[r];
    p1 = L.rowptr[r + 1];
    c = static_cast<const IT*>(L.col);
    w = L.val;
  }
  auto xrow = [&](int64_t p) -> const float* {
    if constexpr (DENSE) return xb + p * ldx;
    else return xb + static_cast<int64_t>(c[p]) * ldx;
  };
  int64_t p = p0;
  for (; p + U <= p1; p += U) {
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      const float v = w[p + u];
      const float* x = xrow(p + u);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[u][j] += v * load_v<V>(x + j * LANES);
    }
  }
  for (; p < p1; ++p) {
    const float v = w[p];
    const float* x = xrow(p);
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[0][j] += v * load_v<V>(x + j * LANES);
  }
  const float b = L.bias ? L.bias[r] : 0.0f;
  float* y = Y + r * ldy + b0;
  const float* base = L.base ? L.base + r * L.ldb + b0 : nullptr;
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    V a = acc[0][j];
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) a += acc[u][j];
    a += b;
    if (base) a += load_v<V>(base + j * LANES);
    if (L.relu) a = a < 0.0f ? V{} : a;  // NaN stays NaN, as in torch.relu
    store_v<V>(y + j * LANES, a);
  }
}

// A thread's 64-byte aligned scratch of at least n floats (kept between calls); one per TAG
// (0: a tile's partial sums, 1: a chain chunk's activations).
template <int TAG = 0>
inline float* scratch_floats(int64_t n) {
  static thread_local std::vector<float> buf;
  return aligned64(buf, n);
}

// Row r for the W samples at b0 in this target's widest vectors (Tile<W>: one pass on AVX-512).
template <int W, bool DENSE, typename IT>
inline void tile_row(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t r, int64_t b0) {
  using T = Tile<W>;
  for (int h = 0; h < T::PASSES; ++h)
    row_tile<typename T::V, T::NV, DENSE, IT>(L, X, ldx, Y, ldy, r, b0 + h * T::NV * T::LANES);
}

#if defined(__AVX512F__)
// R rows of one group (the same count c in this panel) for the 16 * NV samples of a tile: NV * R
// accumulator chains. The first panel starts from the bias, later ones from the partial sums at
// `in` (row stride ldi); the sums go to `out` (row stride ldo), and the last panel applies ReLU.
// `x` goes through an empty asm so that the FMAs address [x + disp] (an indexed address would
// split every fused load+FMA into two uops).
template <int R, int NV>
inline void group_rows(const char* P, const int32_t* rows, const uint16_t* off, const float* val, int64_t c,
                       const Layer& L, const float* in, int64_t ldi, float* out, int64_t ldo, bool first,
                       bool last) {
  __m512 a[R][NV];
  float* y[R];
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i) {
    y[i] = out + static_cast<int64_t>(rows[i]) * ldo;
    if (first) {
      const __m512 b = _mm512_set1_ps(L.bias ? L.bias[rows[i]] : 0.0f);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) a[i][j] = b;
    } else {
      const float* s = in + static_cast<int64_t>(rows[i]) * ldi;
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) a[i][j] = _mm512_loadu_ps(s + 16 * j);
    }
  }
  // the values of 16 nonzeros per row come in one (masked) vector load; each nonzero's broadcast is a lane
  // permute of it (a shuffle) instead of a load of its own, so a nonzero costs its NV input loads and its
  // offset. On a Zen 4 core this measured 0.92-1.00x the time of a broadcast load per nonzero over
  // kernel_ab.py's 24 per-layer cases (docs/backend.md); on Intel cores whose second 512-bit FMA unit
  // shares port 5 with the permute it is untested.
  const __m512i one = _mm512_set1_epi32(1);
  for (int64_t k0 = 0; k0 < c; k0 += 16) {
    const int64_t kn = std::min<int64_t>(16, c - k0);
    const __mmask16 m = static_cast<__mmask16>(kn >= 16 ? 0xFFFF : (1u << kn) - 1);
    __m512 vr[R];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) vr[i] = _mm512_maskz_loadu_ps(m, val + i * c + k0);
    __m512i kv = _mm512_setzero_si512();
    for (int64_t k = k0; k < k0 + kn; ++k) {
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const float* x = reinterpret_cast<const float*>(P + off[i * c + k]);
        __asm__("" : "+r"(x));
        const __m512 v = _mm512_permutexvar_ps(kv, vr[i]);
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) a[i][j] = _mm512_fmadd_ps(v, _mm512_load_ps(x + 16 * j), a[i][j]);
      }
      kv = _mm512_add_epi32(kv, one);
    }
  }
  const bool relu = last && L.relu;  // max(0, a): maxps returns its 2nd operand when one is NaN (NaN stays NaN)
#pragma GCC unroll 4
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      _mm512_storeu_ps(y[i] + 16 * j, relu ? _mm512_max_ps(_mm512_setzero_ps(), a[i][j]) : a[i][j]);
}

// Every row for the 16 * NV (64 or 32) samples at b0 through the grouped panels: just before its
// rows run, each panel of X is repacked into one contiguous (pw, 64) buffer (a 32-sample tile fills
// half of each row), so a panel is pw * 256 contiguous bytes (no L1 set conflicts; the whole panel fits a
// 48 KB L1d for pw <= 160, not a 32 KB one) and a nonzero's inputs sit at a uint16 byte offset. (Repacking the whole (in, 64)
// tile first sent it out to L2 and back; docs/backend.md has the A/B of the two.) The partial
// sums between panels live in a second contiguous (out, 64) buffer, not in Y: Y's rows are a
// batch apart (1 KB at batch 256, 4 KB at 1,024), so a tile's partial sums in Y fall into a
// quarter (or a sixteenth) of the cache sets and are evicted before the next panel reads them.
// R rows at a time: 3 for 64 samples, 4 for 32 (>= 8 chains).
template <int NV>
inline void grouped_tile(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t b0) {
  constexpr int R = NV >= 4 ? 3 : 4;
  float* buf = scratch_floats(L.pw * 64 + (L.npan > 1 ? L.out * 64 : 0));
  float* sums = buf + L.pw * 64;  // (out, 64) partial sums (64-byte aligned: pw * 64 floats is)
  int64_t p = 0, ri = 0;
  // a 64-sample tile of a contiguous, aligned (in, 64) block (a chain's chunk) holds its panels already
  const bool in_place = NV == 4 && ldx == 64 && reinterpret_cast<uintptr_t>(X + b0) % 64 == 0;
  for (int64_t q = 0; q < L.npan; ++q) {
    const int64_t k1 = std::min<int64_t>(L.in, (q + 1) * L.pw);
    if (!in_place)
      for (int64_t k = q * L.pw; k < k1; ++k) {
        const float* s = X + k * ldx + b0;
        float* d = buf + (k - q * L.pw) * 64;
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) _mm512_store_ps(d + 16 * j, _mm512_loadu_ps(s + 16 * j));
      }
    const char* P = reinterpret_cast<const char*>(in_place ? X + b0 + q * L.pw * 64 : buf);
    const bool first = q == 0, last = q == L.npan - 1;
    float* out = last ? Y + b0 : sums;
    const int64_t ldo = last ? ldy : 64;
    for (int32_t g = L.gstart[q]; g < L.gstart[q + 1]; ++g) {
      const int64_t c = L.gcnt[g], nr = L.gnr[g];
      int64_t i = 0;
      for (; i + R <= nr; i += R, ri += R, p += R * c)
        group_rows<R, NV>(P, L.grows + ri, L.poff + p, L.pval + p, c, L, sums, 64, out, ldo, first, last);
      for (; i < nr; ++i, ++ri, p += c)
        group_rows<1, NV>(P, L.grows + ri, L.poff + p, L.pval + p, c, L, sums, 64, out, ldo, first, last);
    }
  }
}
#endif

// One output row r for the single sample at column b0 (stride ldx between features).
template <bool DENSE, typename IT>
inline void row_one(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t r, int64_t b0) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  const float* xb = X + b0;
  if constexpr (DENSE) {
    const float* w = L.val + r * L.in;
    const int64_t n = L.in;
    int64_t k = 0;
    if (ldx == 1) {  // contiguous: a vectorised dot product with 4 accumulators
      constexpr int LN = sizeof(vn) / sizeof(float);  // this target's widest vector
      vn a0 = vn{}, a1 = vn{}, a2 = vn{}, a3 = vn{};
      for (; k + 4 * LN <= n; k += 4 * LN) {
        a0 += load_v<vn>(w + k) * load_v<vn>(xb + k);
        a1 += load_v<vn>(w + k + LN) * load_v<vn>(xb + k + LN);
        a2 += load_v<vn>(w + k + 2 * LN) * load_v<vn>(xb + k + 2 * LN);
        a3 += load_v<vn>(w + k + 3 * LN) * load_v<vn>(xb + k + 3 * LN);
      }
      for (; k + LN <= n; k += LN) a0 += load_v<vn>(w + k) * load_v<vn>(xb + k);
      const vn a = (a0 + a1) + (a2 + a3);
#pragma GCC unroll 16
      for (int j = 0; j < LN; ++j) s0 += a[j];
    }
    for (; k + 4 <= n; k += 4) {
      s0 += w[k] * xb[k * ldx];
      s1 += w[k + 1] * xb[(k + 1) * ldx];
      s2 += w[k + 2] * xb[(k + 2) * ldx];
      s3 += w[k + 3] * xb[(k + 3) * ldx];
    }
    for (; k < n; ++k) s0 += w[k] * xb[k * ldx];
  } else {
    const IT* c = static_cast<const IT*>(L.col);
    int32_t p = L.rowptr[r];
    const int32_t p1 = L.rowptr[r + 1];
#if defined(__AVX512F__)
    // gather 16 inputs at a time; column indices widened to int32 and scaled by the stride
    if (p + 16 <= p1) {
      __m512 g0 = _mm512_setzero_ps(), g1 = _mm512_setzero_ps();
      const __m512i stride = _mm512_set1_epi32(static_cast<int32_t>(ldx));
      auto index16 = [&](int32_t q) -> __m512i {
        __m512i idx;
        if constexpr (sizeof(IT) == 2)
          idx = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + q)));
        else
          idx = _mm512_loadu_si512(reinterpret_cast<const void*>(c + q));
        return ldx == 1 ? idx : _mm512_mullo_epi32(idx, stride);
      };
      for (; p + 32 <= p1; p += 32) {
        g0 = _mm512_fmadd_ps(_mm512_loadu_ps(L.val + p), _mm512_i32gather_ps(index16(p), xb, 4), g0);
        g1 = _mm512_fmadd_ps(_mm512_loadu_ps(L.val + p + 16), _mm512_i32gather_ps(index16(p + 16), xb, 4), g1);
      }
      for (; p + 16 <= p1; p += 16)
        g0 = _mm512_fmadd_ps(_mm512_loadu_ps(L.val + p), _mm512_i32gather_ps(index16(p), xb, 4), g0);
      s0 += _mm512_reduce_add_ps(_mm512_add_ps(g0, g1));
    }
#endif
    for (; p + 4 <= p1; p += 4) {
      s0 += L.val[p] * xb[static_cast<int64_t>(c[p]) * ldx];
      s1 += L.val[p + 1] * xb[static_cast<int64_t>(c[p + 1]) * ldx];
      s2 += L.val[p + 2] * xb[static_cast<int64_t>(c[p + 2]) * ldx];
      s3 += L.val[p + 3] * xb[static_cast<int64_t>(c[p + 3]) * ldx];
    }
    for (; p < p1; ++p) s0 += L.val[p] * xb[static_cast<int64_t>(c[p]) * ldx];
  }
  float s = (s0 + s1) + (s2 + s3) + (L.bias ? L.bias[r] : 0.0f);
  if (L.base) s += L.base[r * L.ldb + b0];
  Y[r * ldy + b0] = (L.relu && s < 0.0f) ? 0.0f : s;
}

// The layer's slices (slices.h), built on first use; nullptr where it has none or they are not usable.
inline const Slices<float>* ready_slices(const Layer& L) {
  return L.col16 ? ready_slices(L.slices, L.rowptr, static_cast<const int16_t*>(L.col), L.val, L.out, L.in)
                 : ready_slices(L.slices, L.rowptr, static_cast<const int32_t*>(L.col), L.val, L.out, L.in);
}

#if defined(__AVX512BW__) && defined(__AVX512VL__)
// Rows [r0, r1) for the one sample at column b0, through the slices (slices.h): the slices that overlap
// [r0, r1) run whole, and only their rows inside it are written.
inline void slice_rows(const Layer& L, const Slices<float>& S, const float* X, int64_t ldx, float* Y, int64_t ldy,
                       int64_t r0, int64_t r1, int64_t b0) {
  const float* x = slice_input(X + b0, ldx, L.in, S.nb);
  for (int64_t s = r0 / 16; 16 * s < r1; ++s) {
    alignas(64) float o[16];
    _mm512_store_ps(o, slice_sums(S, x, s));
    for (int64_t l = 0; l < 16; ++l) {
      const int64_t r = 16 * s + l;
      if (r < r0 || r >= r1) continue;
      float y = o[l] + (L.bias ? L.bias[r] : 0.0f);
      if (L.base) y += L.base[r * L.ldb + b0];
      Y[r * ldy + b0] = (L.relu && y < 0.0f) ? 0.0f : y;  // NaN stays NaN
    }
  }
}
#endif

// rows [r0, r1) for every sample: 64-sample (tile >= 64) or 32-sample (tile 32) tiles through the
// grouped panels when the layer has them (all rows only), else tiles of `tile` (128, 64, 32 or 16) samples, then the remainder in
// halving widths and finally single samples
template <bool DENSE, typename IT>
void rows_all(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B, int64_t r0, int64_t r1,
              int64_t tile) {
  int64_t b0 = 0;
#if defined(__AVX512F__)
  if constexpr (!DENSE) {  // grouped panels cover every row: only for the whole row range
    // tile >= 64: 64-sample tiles grouped, a remainder by the row tiles below; tile 32: 32-sample
    // tiles grouped (better for wide layers at batch 32, worse for small ones: the dispatch times both)
    if (L.npan > 0 && tile >= 32 && r0 == 0 && r1 == L.out) {
      if (tile >= 64)
        for (; b0 + 64 <= B; b0 += 64) grouped_tile<4>(L, X, ldx, Y, ldy, b0);
      else
        for (; b0 + 32 <= B; b0 += 32) grouped_tile<2>(L, X, ldx, Y, ldy, b0);
    }
  }
#endif
  if (tile >= 128)
    for (; b0 + 128 <= B; b0 += 128)
      for (int64_t r = r0; r < r1; ++r) tile_row<128, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  if (tile >= 64)
    for (; b0 + 64 <= B; b0 += 64)
      for (int64_t r = r0; r < r1; ++r) tile_row<64, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  if (tile >= 32)
    for (; b0 + 32 <= B; b0 += 32)
      for (int64_t r = r0; r < r1; ++r) tile_row<32, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  for (; b0 + 16 <= B; b0 += 16)
    for (int64_t r = r0; r < r1; ++r) tile_row<16, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  if (b0 + 8 <= B) {
    for (int64_t r = r0; r < r1; ++r) tile_row<8, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
    b0 += 8;
  }
  if (b0 + 4 <= B) {
    for (int64_t r = r0; r < r1; ++r) tile_row<4, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
    b0 += 4;
  }
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  if constexpr (!DENSE) {  // a call of 1-3 samples: the slices, where the layer has them
    if (B < 4)
      if (const Slices<float>* S = ready_slices(L)) {
        for (; b0 < B; ++b0) slice_rows(L, *S, X, ldx, Y, ldy, r0, r1, b0);
        return;
      }
  }
#endif
  for (; b0 < B; ++b0)
    for (int64_t r = r0; r < r1; ++r) row_one<DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
}

void run_rows(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B, int64_t r0, int64_t r1,
              int64_t tile) {
  if (!L.rowptr) rows_all<true, int32_t>(L, X, ldx, Y, ldy, B, r0, r1, tile);
  else if (L.col16) rows_all<false, int16_t>(L, X, ldx, Y, ldy, B, r0, r1, tile);
  else rows_all<false, int32_t>(L, X, ldx, Y, ldy, B, r0, r1, tile);
}

int64_t clamp_threads(int64_t threads);

// transpose_range over every source feature, split over threads for large copies
void transpose_into(const float* src, float* dst, int64_t B, int64_t Fx, int64_t threads, int64_t ld,
                    const Scatter* sc = nullptr) {
  const int64_t n = clamp_threads(threads);
  if (n <= 1 || Fx < 64 || B * Fx < 16384) {  // small copies: a fork/join costs more
    transpose_range(src, Fx, B, sc, dst, ld, 0, Fx);
    return;
  }
  // split by whole 8-feature blocks (at::parallel_for cuts its range where it likes, not at multiples of a grain)
  const int64_t blocks = (Fx + 7) / 8;
  at::parallel_for(0, blocks, (blocks + n - 1) / n, [&](int64_t k0, int64_t k1) {
    transpose_range(src, Fx, B, sc, dst, ld, 8 * k0, std::min(Fx, 8 * k1));
  });
}

int64_t clamp_threads(int64_t threads) {
  return std::max<int64_t>(1, std::min<int64_t>(threads, at::get_num_threads()));
}

// One layer over n threads. Work units: chunks of rows when the layer has >= 16 rows per
// thread and no grouped panels, else chunks of sample tiles (multiples of 16 samples, of 64 or 32
// for grouped panels); about 4 per thread, claimed
// dynamically (an atomic counter) so that the split adapts to a thread that starts late.
void run_layer(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B, int64_t threads,
               int64_t tile) {
  const int64_t n = clamp_threads(threads);
  // grouped panels run whole rows for 64-sample tiles: split those by samples when there are enough
#if defined(__AVX512F__)
  const bool grouped = L.npan > 0 && tile >= 32 && B >= 2 * std::min<int64_t>(tile, 64) * n;
#else
  const bool grouped = false;
#endif
  const bool by_rows = !grouped && L.out >= 16 * n;
  if (n <= 1 || at::in_parallel_region() || (!by_rows && B < 32)) {
    run_rows(L, X, ldx, Y, ldy, B, 0, L.out, tile);
    return;
  }
  const int64_t extent = by_rows ? L.out : B;
  int64_t step = (extent + 4 * n - 1) / (4 * n);
  const int64_t unit = grouped ? std::min<int64_t>(tile, 64) : 16;
  step = by_rows ? std::max<int64_t>(step, 8) : std::max<int64_t>((step + unit - 1) / unit * unit, unit);
  const int64_t chunks = (extent + step - 1) / step;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t a = c * step, b = std::min(extent, a + step);
      if (by_rows) {
        run_rows(L, X, ldx, Y, ldy, B, a, b, tile);
      } else {
        Layer S = L;  // the samples [a, b): the base moves with them
        if (S.base) S.base += a;
        run_rows(S, X + a, ldx, Y + a, ldy, b - a, 0, L.out, tile);
      }
    }
  });
}

}  // namespace

// (B, F) -> (F, B), blocked.
at::Tensor transpose(at::Tensor X, int64_t threads) {
  TORCH_CHECK(X.dim() == 2 && X.scalar_type() == at::kFloat && X.device().is_cpu(), "X must be a 2-D float32 CPU tensor");
  X = X.contiguous();
  at::Tensor out = at::empty({X.size(1), X.size(0)}, X.options());
  transpose_into(X.data_ptr<float>(), out.data_ptr<float>(), X.size(0), X.size(1), threads, X.size(0));
  return out;
}

// Regroup a CSR (int32 rowptr, int16/int32 col, float val) into column panels of `pw` (1 to 256)
// input features, rows grouped by their count in each panel (see Layer): returns
// [meta int32 = (npan, ng, nrows, gstart (npan + 1), gcnt (ng), gnr (ng), grows (nrows)),
//  poff (nnz) uint16 byte offsets (panel-local column * 256), pval (nnz) float32].
// Panel 0 and the last panel list every row (also rows without nonzeros there), the others
// only rows with nonzeros; within a panel rows are in increasing count, then row order.
std::vector<at::Tensor> panelize(at::Tensor rowptr, at::Tensor col, at::Tensor val, int64_t in, int64_t pw) {
  TORCH_CHECK(rowptr.scalar_type() == at::kInt && rowptr.is_contiguous() && rowptr.numel() >= 1,
              "rowptr must be contiguous int32 with out + 1 entries");
  TORCH_CHECK(col.is_contiguous() && (col.scalar_type() == at::kShort || col.scalar_type() == at::kInt),
              "col must be contiguous int16 or int32");
  TORCH_CHECK(val.scalar_type() == at::kFloat && val.is_contiguous() && val.numel() == col.numel(), "bad values");
  TORCH_CHECK(pw >= 1 && pw <= 256 && in >= 1, "panel width must be in [1, 256] and in >= 1");
  const int64_t out = rowptr.numel() - 1, nnz = col.numel();
  const int64_t npan = (in + pw - 1) / pw;
  const int32_t* rp = rowptr.data_ptr<int32_t>();
  TORCH_CHECK(rp[0] == 0 && rp[out] == nnz, "rowptr must run from 0 to nnz");
  const bool c16 = col.scalar_type() == at::kShort;
  const int16_t* col16 = c16 ? col.data_ptr<int16_t>() : nullptr;
  const int32_t* col32 = c16 ? nullptr : col.data_ptr<int32_t>();
  auto colat = [&](int64_t p) -> int64_t { return c16 ? col16[p] : col32[p]; };
  std::vector<int32_t> panel_of(in);  // column -> its panel (no integer division per nonzero)
  for (int64_t c = 0; c < in; ++c) panel_of[c] = static_cast<int32_t>(c / pw);
  std::vector<int32_t> cnt(npan * out, 0);  // nonzeros per (panel, row)
  for (int64_t r = 0; r < out; ++r) {
    TORCH_CHECK(rp[r] <= rp[r + 1], "rowptr must be non-decreasing");
    bool inside = true;
    for (int64_t p = rp[r]; p < rp[r + 1]; ++p) {
      const int64_t c = colat(p);
      inside &= c >= 0 && c < in;
      if (inside) ++cnt[panel_of[c] * out + r];
    }
    TORCH_CHECK(inside, "column index out of range");
  }
  std::vector<int32_t> gstart{0}, gcnt, gnr, grows;
  std::vector<int64_t> pos(npan * out, 0);  // where each (panel, row) segment starts in poff / pval
  std::vector<int32_t> order(out), hist;
  int64_t acc = 0;
  for (int64_t q = 0; q < npan; ++q) {
    const int32_t* cq = cnt.data() + q * out;
    const bool all = q == 0 || q == npan - 1;
    int32_t maxc = 0;
    for (int64_t r = 0; r < out; ++r) maxc = std::max(maxc, cq[r]);
    hist.assign(maxc + 2, 0);  // counting sort of the rows by count (stable)
    for (int64_t r = 0; r < out; ++r) ++hist[cq[r] + 1];
    for (int32_t c = 0; c <= maxc; ++c) hist[c + 1] += hist[c];
    for (int64_t r = 0; r < out; ++r) order[hist[cq[r]]++] = static_cast<int32_t>(r);
    int32_t prev = -1;
    for (int64_t i = 0; i < out; ++i) {
      const int32_t r = order[i], c = cq[r];
      if (c == 0 && !all) continue;
      if (c != prev) {
        gcnt.push_back(c);
        gnr.push_back(0);
        prev = c;
      }
      ++gnr.back();
      grows.push_back(r);
      pos[q * out + r] = acc;
      acc += c;
    }
    gstart.push_back(static_cast<int32_t>(gcnt.size()));
  }
  const int64_t ng = gcnt.size(), nrows = grows.size();
  at::Tensor meta = at::empty({3 + npan + 1 + 2 * ng + nrows}, rowptr.options());
  int32_t* m = meta.data_ptr<int32_t>();
  m[0] = static_cast<int32_t>(npan);
  m[1] = static_cast<int32_t>(ng);
  m[2] = static_cast<int32_t>(nrows);
  std::copy(gstart.begin(), gstart.end(), m + 3);
  std::copy(gcnt.begin(), gcnt.end(), m + 3 + npan + 1);
  std::copy(gnr.begin(), gnr.end(), m + 3 + npan + 1 + ng);
  std::copy(grows.begin(), grows.end(), m + 3 + npan + 1 + 2 * ng);
  at::Tensor poff = at::empty({nnz}, at::TensorOptions().dtype(at::kUInt16));
  at::Tensor pval = at::empty({nnz}, val.options());
  uint16_t* po = reinterpret_cast<uint16_t*>(poff.data_ptr());
  float* pv = pval.data_ptr<float>();
  const float* v = val.data_ptr<float>();
  for (int64_t r = 0; r < out; ++r)
    for (int64_t p = rp[r]; p < rp[r + 1]; ++p) {
      const int64_t c = colat(p), q = panel_of[c];
      const int64_t d = pos[q * out + r]++;
      po[d] = static_cast<uint16_t>((c - q * pw) * 256);
      pv[d] = v[p];
    }
  return {meta, poff, pval};
}

namespace {

// Check a CSR's structure against `in` input features: rowptr from 0 to nnz, never decreasing, every
// column index in [0, in). Every route that runs a CSR from caller tensors checks it first, so hostile
// tensors raise instead of reading out of bounds.
void check_csr(const int32_t* rp, int64_t out, const void* col, bool col16, int64_t nnz, int64_t in) {
  TORCH_CHECK(rp[0] == 0 && rp[out] == nnz, "rowptr must run from 0 to nnz");
  for (int64_t r = 0; r < out; ++r) TORCH_CHECK(rp[r] <= rp[r + 1], "rowptr must be non-decreasing");
  bool inside = true;
  for (int64_t p = 0; p < nnz; ++p) {
    const int64_t c = col16 ? static_cast<const int16_t*>(col)[p] : static_cast<const int32_t*>(col)[p];
    inside &= c >= 0 && c < in;
  }
  TORCH_CHECK(inside, "column index out of range");
}

// Validate grouped panels (from `panelize`) for layer L and point L at them: a chain built from
// any tensors can then never read or write out of bounds.
void check_groups(Layer& L, const at::Tensor& meta, const at::Tensor& poff, const at::Tensor& pval, int64_t pw,
                  int64_t nnz) {
  TORCH_CHECK(pw >= 1 && pw <= 256, "panel width must be in [1, 256]");
  TORCH_CHECK(meta.scalar_type() == at::kInt && meta.is_contiguous() && meta.numel() >= 3,
              "panel metadata must be contiguous int32 (from panelize)");
  TORCH_CHECK(poff.scalar_type() == at::kUInt16 && poff.is_contiguous() && poff.numel() == nnz,
              "panel offsets must be contiguous uint16 of length nnz");
  TORCH_CHECK(pval.scalar_type() == at::kFloat && pval.is_contiguous() && pval.numel() == nnz,
              "panel values must be contiguous float32 of length nnz");
  const int32_t* m = meta.data_ptr<int32_t>();
  const int64_t npan = (L.in + pw - 1) / pw, ng = m[1], nrows = m[2];
  TORCH_CHECK(m[0] == npan && ng >= 0 && nrows >= 0 && meta.numel() == 3 + npan + 1 + 2 * ng + nrows,
              "panel metadata does not match the layer (in ", L.in, ", panel width ", pw, ")");
  const int32_t* gstart = m + 3;
  const int32_t* gcnt = gstart + npan + 1;
  const int32_t* gnr = gcnt + ng;
  const int32_t* grows = gnr + ng;
  const uint16_t* po = reinterpret_cast<const uint16_t*>(poff.data_ptr());
  TORCH_CHECK(gstart[0] == 0 && gstart[npan] == ng, "bad panel group starts");
  std::vector<int32_t> seen(L.out, -1);
  int64_t p = 0, ri = 0;
  for (int64_t q = 0; q < npan; ++q) {
    TORCH_CHECK(gstart[q] <= gstart[q + 1], "bad panel group starts");
    const int64_t width = std::min<int64_t>(pw, L.in - q * pw), listed0 = ri;
    for (int32_t g = gstart[q]; g < gstart[q + 1]; ++g) {
      TORCH_CHECK(gcnt[g] >= 0 && gnr[g] >= 0 && ri + gnr[g] <= nrows, "bad panel group sizes");
      for (int32_t i = 0; i < gnr[g]; ++i, ++ri) {
        const int32_t r = grows[ri];
        TORCH_CHECK(r >= 0 && r < L.out && seen[r] != q, "panel rows must be distinct rows of the layer");
        seen[r] = static_cast<int32_t>(q);
        TORCH_CHECK(p + gcnt[g] <= nnz, "panel groups hold more than nnz entries");
        for (int32_t k = 0; k < gcnt[g]; ++k, ++p)
          TORCH_CHECK(po[p] % 256 == 0 && po[p] / 256 < width, "panel offset out of range");
      }
    }
    TORCH_CHECK((q != 0 && q != npan - 1) || ri - listed0 == L.out, "the first and last panels must list every row");
  }
  TORCH_CHECK(ri == nrows && p == nnz, "panel groups must hold exactly nnz entries");
  L.gstart = gstart;
  L.gcnt = gcnt;
  L.gnr = gnr;
  L.grows = grows;
  L.poff = po;
  L.pval = pval.data_ptr<float>();
  L.pw = pw;
  L.npan = npan;
}

// A validated chain of layers whose tensors are kept alive by the owner.
struct ChainSpec {
  std::vector<Layer> layers;
  std::vector<int64_t> threads, tiles;
  std::vector<at::Tensor> keep;  // every tensor the raw pointers point into
  std::vector<std::unique_ptr<Slices<float>>> slices;  // the CSR layers' single-sample slices (a kept Chain only)
};

ChainSpec make_spec(int64_t in0, const std::vector<at::Tensor>& rowptrs, const std::vector<at::Tensor>& cols,
                    const std::vector<at::Tensor>& vals, const std::vector<at::Tensor>& biases,
                    const std::vector<bool>& relus, const std::vector<int64_t>& threads,
                    const std::vector<int64_t>& tiles, const std::vector<at::Tensor>& prows,
                    const std::vector<at::Tensor>& pcols, const std::vector<at::Tensor>& pvals,
                    const std::vector<int64_t>& pws, bool kept = false) {
  const size_t n = vals.size();
  TORCH_CHECK(rowptrs.size() == n && cols.size() == n && biases.size() == n && relus.size() == n && threads.size() == n &&
                  tiles.size() == n,
              "chain_forward: per-layer lists must have equal lengths");
  TORCH_CHECK(prows.empty() || (prows.size() == n && pcols.size() == n && pvals.size() == n && pws.size() == n),
              "chain_forward: panel lists must be empty or one per layer");
  ChainSpec s;
  s.threads = threads;
  s.tiles = tiles;
  int64_t cur_in = in0;
  for (size_t i = 0; i < n; ++i) {
    Layer L{};
    const bool dense = rowptrs[i].numel() == 0;
    TORCH_CHECK(vals[i].scalar_type() == at::kFloat && vals[i].is_contiguous(), "values must be contiguous float32");
    if (dense) {
      TORCH_CHECK(vals[i].dim() == 2, "dense layer weight must be (out, in)");
      L.out = vals[i].size(0);
      L.in = vals[i].size(1);
    } else {
      TORCH_CHECK(rowptrs[i].scalar_type() == at::kInt && rowptrs[i].is_contiguous(), "rowptr must be contiguous int32");
      TORCH_CHECK(cols[i].is_contiguous() && (cols[i].scalar_type() == at::kShort || cols[i].scalar_type() == at::kInt),
                  "col indices must be contiguous int16 or int32");
      TORCH_CHECK(cols[i].numel() == vals[i].numel(), "cols and values must have the same length");
      TORCH_CHECK(rowptrs[i].dim() == 1 && cols[i].dim() == 1 && vals[i].dim() == 1,
                  "a CSR layer's rowptr, col indices and values must be 1-D");
      L.out = rowptrs[i].numel() - 1;
      L.in = cur_in;
      L.rowptr = rowptrs[i].data_ptr<int32_t>();
      L.col = cols[i].data_ptr();
      L.col16 = cols[i].scalar_type() == at::kShort;
      check_csr(L.rowptr, L.out, L.col, L.col16, cols[i].numel(), L.in);
      if (kept) {  // built on the first call of 1-3 samples: a one-shot call would pay O(nnz) for one product
        s.slices.push_back(std::make_unique<Slices<float>>());
        L.slices = s.slices.back().get();
      }
      if (!prows.empty() && prows[i].numel() > 0) {
        check_groups(L, prows[i], pcols[i], pvals[i], pws[i], vals[i].numel());
        s.keep.insert(s.keep.end(), {prows[i], pcols[i], pvals[i]});
      }
    }
    TORCH_CHECK(L.in == cur_in, "layer ", i, " expects ", L.in, " input features, got ", cur_in);
    L.val = vals[i].data_ptr<float>();
    if (biases[i].numel() > 0) {
      TORCH_CHECK(biases[i].scalar_type() == at::kFloat && biases[i].is_contiguous() && biases[i].numel() == L.out,
                  "bias must be contiguous float32 of length out");
      L.bias = biases[i].data_ptr<float>();
    }
    L.relu = relus[i];
    s.keep.insert(s.keep.end(), {rowptrs[i], cols[i], vals[i], biases[i]});
    s.layers.push_back(L);
    cur_in = L.out;
  }
  return s;
}

// Leading dimension of the activation buffers: with a row stride that is a multiple of
// 256 bytes (B = 64, 128, 256, ...), the rows of a sample tile map onto a quarter (or
// less) of the L1 sets and the input panel no longer fits; one extra cache line of
// padding per row spreads them over all sets.
inline int64_t padded_ld(int64_t B) { return (B >= 64 && (B * 4) % 256 == 0) ? B + 16 : B; }

// Activation buffers a Chain keeps between calls (slot 0: the transposed input, slot i + 1:
// layer i's output): allocated once per batch size and reused, because a fresh multi-MB
// allocation per call costs page faults that can exceed the arithmetic.
struct Buffers {
  std::vector<at::Tensor> slots;
  at::Tensor get(size_t k, int64_t rows, int64_t cols, const at::TensorOptions& opts) {
    if (slots.size() <= k) slots.resize(k + 1);
    at::Tensor& t = slots[k];
    if (!t.defined() || t.size(0) != rows || t.size(1) != cols) t = at::empty({rows, cols}, opts);
    return t;
  }
};

// A reusable buffer from `bufs`, or a fresh tensor when there is none (one-shot calls).
inline at::Tensor scratch(Buffers* bufs, size_t k, int64_t rows, int64_t cols, const at::TensorOptions& opts) {
  return bufs ? bufs->get(k, rows, cols, opts) : at::empty({rows, cols}, opts);
}

// Samples per chunk of a chunked chain (batches above CHUNK run in chunks): one 64-sample tile, so a
// chunk's activations are contiguous (features, 64) blocks whose column panels the grouped kernel reads
// in place (no repacking), and a layer's input and output stay in L2. LeNet-300-100's chain at batch 256
// and 1,024 runs in 0.71-0.87x the time it took in chunks of 64-512 samples sized to 1 MB of activations
// (benchmarks/kernel_ab.py --chains, docs/backend.md).
constexpr int64_t CHUNK = 64;

// The whole chain CHUNK samples at a time, each chunk on one thread through every layer (chunks claimed
// from a counter, so no barrier between layers and a late thread finds less left): a chunk's
// activations stay in L2, where layer after layer over the whole batch sent them through L3.
// X: batch-major (rows of stride ldx; source features gathered by sc as in transpose_range, sc null: f -> f)
// or feature-major (F, ldx). Y: (B, O) if bm_out, else (O, B).
void run_chunks(const ChainSpec& s, const float* X, bool bm_in, int64_t ldx, int64_t Fx, const Scatter* sc, int64_t F,
                int64_t B, float* Y, bool bm_out, int64_t n) {
  int64_t widest = F;
  for (const Layer& L : s.layers) widest = std::max(widest, L.out);
  constexpr int64_t C = CHUNK, ldc = CHUNK;  // unpadded: a chunk's block is read whole, in panels
  const int64_t chunks = (B + C - 1) / C, O = s.layers.back().out;
  std::atomic<int64_t> next{0};
  auto work = [&](int64_t, int64_t) {
    float* buf = scratch_floats<1>(2 * widest * ldc);
    float* const ping[2] = {buf, buf + widest * ldc};  // (widest, ldc) each: a layer's input and output
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t b0 = c * C, nb = std::min(C, B - b0);
      const float* in = X + b0;  // feature-major: the chunk's columns
      int64_t ldi = ldx, k = 0;
      if (bm_in) {
        transpose_range(X + b0 * ldx, ldx, nb, sc, ping[0], ldc, 0, Fx);  // (F, nb)
        in = ping[0];
        ldi = ldc;
        k = 1;
      }
      for (size_t i = 0; i < s.layers.size(); ++i) {
        const bool direct = i + 1 == s.layers.size() && !bm_out;  // the last layer writes Y's columns
        float* y = direct ? Y + b0 : ping[k];
        const int64_t ldy = direct ? B : ldc;
        k ^= direct ? 0 : 1;
        run_rows(s.layers[i], in, ldi, y, ldy, nb, 0, s.layers[i].out, s.tiles[i]);
        in = y;
        ldi = ldy;
      }
      if (bm_out) transpose_range(in, ldi, O, nullptr, Y + b0 * O, O, 0, nb);  // (O, nb) -> rows b0.. of Y
    }
  };
  if (n <= 1 || at::in_parallel_region()) work(0, 1);
  else at::parallel_for(0, n, 1, work);
}

// Run the chain on X. `keep` (optional int64): input columns the first layer reads (dead
// inputs compacted away). `batch_major_output`: return (B, out_last) instead of (out_last, B).
// `max_threads`: -1 runs every layer on its own thread count (a chunked chain on the largest of
// them); n >= 1 runs this call on n threads (every layer capped at n, a chunked chain's chunks on
// n: the ThreadGuard's choice). The returned tensor is always freshly allocated (never one of the
// reused buffers).
at::Tensor run_spec(const ChainSpec& s, at::Tensor X, bool batch_major_input, bool batch_major_output = false,
                       int64_t max_threads = -1, const at::Tensor* keep = nullptr, Buffers* bufs = nullptr,
                       const Scatter* scatter_to = nullptr) {
  TORCH_CHECK(X.dim() == 2 && X.scalar_type() == at::kFloat && X.device().is_cpu(), "X must be a 2-D float32 CPU tensor");
  const bool gather = keep && keep->defined() && keep->numel() > 0;
  const int64_t B = batch_major_input ? X.size(0) : X.size(1);
  const int64_t Fx = batch_major_input ? X.size(1) : X.size(0);
  const int64_t F = gather ? keep->numel() : Fx;
  const int64_t ldp = padded_ld(B);
  const auto opts = X.options();
  auto th = [&](size_t i) { return max_threads < 1 ? s.threads[i] : std::min<int64_t>(s.threads[i], max_threads); };
  at::Tensor cur;
  int64_t ldc = B;
  const bool scatter = gather && batch_major_input && scatter_to && !scatter_to->empty();
  if (gather && !scatter) X = X.index_select(batch_major_input ? 1 : 0, *keep);  // (B, F) or (F, B)
  int64_t n = max_threads < 1 ? 1 : clamp_threads(max_threads);
  for (size_t i = 0; max_threads < 1 && i < s.layers.size(); ++i) n = std::max(n, clamp_threads(th(i)));
  if (!s.layers.empty() && B > CHUNK) {  // chunked: see run_chunks
    TORCH_CHECK(s.layers[0].in == F, "layer 0 expects ", s.layers[0].in, " input features, got ", F);
    if (batch_major_input || X.stride(1) != 1 || (F > 1 && X.stride(0) < B)) X = X.contiguous();
    const int64_t O = s.layers.back().out;
    at::Tensor Y = batch_major_output ? at::empty({B, O}, opts) : at::empty({O, B}, opts);
    run_chunks(s, X.data_ptr<float>(), batch_major_input, batch_major_input ? X.size(1) : X.stride(0),
               scatter ? Fx : F, scatter ? scatter_to : nullptr, F, B, Y.data_ptr<float>(), batch_major_output, n);
    return Y;
  }
  if (scatter) {  // gather and transpose in one pass: kept input i -> row i
    X = X.contiguous();
    cur = scratch(bufs, 0, F, ldp, opts);
    transpose_into(X.data_ptr<float>(), cur.data_ptr<float>(), B, Fx, s.layers.empty() ? 1 : th(0), ldp, scatter_to);
    ldc = ldp;
  } else if (!batch_major_input) {
    if (X.stride(1) != 1 || (F > 1 && X.stride(0) < B)) X = X.contiguous();
    cur = X;
    ldc = F > 1 ? X.stride(0) : B;
  } else if (B == 1) {
    cur = X.contiguous().view({F, 1});
  } else {
    cur = scratch(bufs, 0, F, ldp, opts);
    transpose_into(X.contiguous().data_ptr<float>(), cur.data_ptr<float>(), B, F, s.layers.empty() ? 1 : th(0), ldp);
    ldc = ldp;
  }
  for (size_t i = 0; i < s.layers.size(); ++i) {
    const Layer& L = s.layers[i];
    TORCH_CHECK(L.in == cur.size(0), "layer ", i, " expects ", L.in, " input features, got ", cur.size(0));
    const bool lastl = i + 1 == s.layers.size();
    const int64_t ldo = lastl ? B : ldp;  // the result is contiguous
    at::Tensor out = lastl && !batch_major_output ? at::empty({L.out, ldo}, opts)
                                                     : scratch(bufs, i + 1, L.out, ldo, opts);
    if (B > 0 && L.out > 0) run_layer(L, cur.data_ptr<float>(), ldc, out.data_ptr<float>(), ldo, B, th(i), s.tiles[i]);
    cur = out;
    ldc = ldo;
  }
  if (batch_major_output) {
    const int64_t O = cur.size(0);
    at::Tensor res = at::empty({B, O}, opts);
    if (B == 1 || O == 1) res.view({-1}).copy_(cur.narrow(1, 0, B).reshape({-1}));
    else transpose_into(cur.data_ptr<float>(), res.data_ptr<float>(), O, B, 1, O);
    return res;
  }
  if (ldc != B) cur = cur.narrow(1, 0, B);
  return cur;
}

}  // namespace

// Run a chain of layers on activations X; returns (out_last, B) feature-major.
// X is feature-major (in, B), or batch-major (B, in) when batch_major_input (then it is
// transposed first, in blocks). Layer i is CSR when rowptrs[i] is non-empty, else dense
// with vals[i] = W (out, in). tiles[i] is the sample tile width (128, 64, 32 or 16); the
// optional panel lists (from `panelize`) enable the grouped-panel path for tiles >= 32.
at::Tensor chain_forward(at::Tensor X, std::vector<at::Tensor> rowptrs, std::vector<at::Tensor> cols,
                            std::vector<at::Tensor> vals, std::vector<at::Tensor> biases,
                            std::vector<bool> relus, std::vector<int64_t> threads, std::vector<int64_t> tiles,
                            bool batch_major_input, std::vector<at::Tensor> prows,
                            std::vector<at::Tensor> pcols, std::vector<at::Tensor> pvals,
                            std::vector<int64_t> pws) {
  TORCH_CHECK(X.dim() == 2, "X must be 2-D");
  const int64_t in0 = batch_major_input ? X.size(1) : X.size(0);
  ChainSpec s = make_spec(in0, rowptrs, cols, vals, biases, relus, threads, tiles, prows, pcols, pvals, pws);
  return run_spec(s, X, batch_major_input);
}

constexpr int64_t ONTO_WINDOW = 256;

// Y = relu?(base + W X) for a CSR W (out, in) and feature-major X (in, B): one pass that starts
// every output row from its row of `base` (out, B), e.g. a cached product that W corrects (the
// live slider's first layer: an anchor level's pre-activations and the entries the new level
// prunes or restores, with their signs). Every index is checked. Returns a fresh (out, B) tensor.
at::Tensor csr_onto(at::Tensor base, at::Tensor rowptr, at::Tensor col, at::Tensor val, at::Tensor X,
                       bool relu, int64_t threads) {
  TORCH_CHECK(X.dim() == 2 && X.scalar_type() == at::kFloat && X.device().is_cpu(), "X must be a 2-D float32 CPU tensor");
  TORCH_CHECK(base.dim() == 2 && base.scalar_type() == at::kFloat && base.device().is_cpu(),
              "base must be a 2-D float32 CPU tensor");
  TORCH_CHECK(rowptr.scalar_type() == at::kInt && rowptr.dim() == 1 && rowptr.numel() == base.size(0) + 1,
              "rowptr must be int32 with out + 1 entries");
  TORCH_CHECK(col.dim() == 1 && (col.scalar_type() == at::kShort || col.scalar_type() == at::kInt),
              "col indices must be int16 or int32");
  TORCH_CHECK(val.scalar_type() == at::kFloat && val.dim() == 1 && val.numel() == col.numel(),
              "values must be float32, one per column index");
  TORCH_CHECK(base.size(1) == X.size(1), "base has ", base.size(1), " samples, X has ", X.size(1));
  rowptr = rowptr.contiguous();
  col = col.contiguous();
  val = val.contiguous();
  base = base.contiguous();
  if (X.stride(1) != 1 || (X.size(0) > 1 && X.stride(0) < X.size(1))) X = X.contiguous();
  const int64_t out = base.size(0), in = X.size(0), B = X.size(1), nnz = col.numel();
  const int32_t* rp = rowptr.data_ptr<int32_t>();
  const bool c16 = col.scalar_type() == at::kShort;
  check_csr(rp, out, col.data_ptr(), c16, nnz, in);
  Layer L{};
  L.rowptr = rp;
  L.col = col.data_ptr();
  L.col16 = c16;
  L.val = val.data_ptr<float>();
  L.out = out;
  L.in = in;
  L.relu = relu;
  L.base = base.data_ptr<float>();
  L.ldb = B;
  at::Tensor Y = at::empty({out, B}, X.options());
  const float* x = X.data_ptr<float>();
  const int64_t ldx = X.size(0) > 1 ? X.stride(0) : B;
  float* y = Y.data_ptr<float>();
  // windows of ONTO_WINDOW samples, each row's window at a time: a window of X (in x 1 KB) stays in L2
  // while base and Y are read and written in contiguous 1 KB runs (64-sample tiles over all rows
  // first strided them by a whole row and measured ~3x slower)
  const int64_t n = clamp_threads(threads);
  auto rows = [&](int64_t r0, int64_t r1) {
    for (int64_t w0 = 0; w0 < B; w0 += ONTO_WINDOW) {
      Layer S = L;
      S.base += w0;
      const int64_t wb = std::min<int64_t>(ONTO_WINDOW, B - w0);
      for (int64_t r = r0; r < r1; ++r) run_rows(S, x + w0, ldx, y + w0, B, wb, r, r + 1, 64);
    }
  };
  if (n <= 1 || out < 16 * n || at::in_parallel_region()) rows(0, out);
  else at::parallel_for(0, out, (out + 4 * n - 1) / (4 * n), rows);
  return Y;
}

// keep = positions >= k and weight * keep (weight times 1.0 or 0.0, as torch's weight * mask: a pruned
// negative weight becomes -0.0, NaN stays NaN), in one pass; `positions` int32, `weight` float32, same shape.
std::vector<at::Tensor> cut_weight(at::Tensor positions, int64_t k, at::Tensor weight) {
  TORCH_CHECK(positions.scalar_type() == at::kInt && positions.device().is_cpu(), "positions must be int32 on the CPU");
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.device().is_cpu(), "weight must be float32 on the CPU");
  TORCH_CHECK(positions.sizes() == weight.sizes(), "positions and weight must have the same shape");
  positions = positions.contiguous();
  weight = weight.contiguous();
  at::Tensor keep = at::empty(weight.sizes(), weight.options().dtype(at::kBool));
  at::Tensor pruned = at::empty_like(weight);
  const int32_t* p = positions.data_ptr<int32_t>();
  const float* w = weight.data_ptr<float>();
  bool* m = keep.data_ptr<bool>();
  float* y = pruned.data_ptr<float>();
  const int64_t n = weight.numel();
  const int32_t kk = static_cast<int32_t>(std::max<int64_t>(std::min<int64_t>(k, INT32_MAX), INT32_MIN));
  const bool none = k > INT32_MAX;  // a cut past every int32 position keeps nothing
  int64_t i = 0;
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
  if (!none) {
    const __m512i kv = _mm512_set1_epi32(kk);
    const __m512 one = _mm512_set1_ps(1.0f);
    const __m128i bit = _mm_set1_epi8(1);
    for (; i + 16 <= n; i += 16) {
      const __mmask16 on = _mm512_cmpge_epi32_mask(_mm512_loadu_si512(p + i), kv);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(m + i), _mm_and_si128(_mm_movm_epi8(on), bit));
      _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(w + i), _mm512_maskz_mov_ps(on, one)));
    }
  }
#endif
  for (; i < n; ++i) {
    const bool on = !none && p[i] >= kk;
    m[i] = on;
    y[i] = w[i] * (on ? 1.0f : 0.0f);
  }
  return {keep, pruned};
}

// (sum over samples of the cross-entropy, number of samples whose argmax is the label) of float32
// logits (N, C) and int64 labels (N,), in one pass: what an evaluation needs from a batch of
// logits (torch's log_softmax + argmax cost ~0.15 ms on (1000, 10) on one thread; this ~10 us).
// argmax as torch's: the first maximal index, a NaN counting as the maximum. Labels are checked.
#if defined(__AVX512F__)
// e^x for 16 floats x <= 0 (-inf included): Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, Cephes' degree-6
// polynomial for e^r (about 1 ulp), scaled by 2^n with scalef; below -87.3 the result is 0 or a subnormal.
inline __m512 exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f));  // e^-104 underflows to 0 like e^-inf
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  const __m512 e = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(e, n);
}
#endif

std::tuple<double, int64_t> label_stats(at::Tensor logits, at::Tensor labels) {
  TORCH_CHECK(logits.dim() == 2 && logits.scalar_type() == at::kFloat && logits.device().is_cpu(),
              "logits must be a 2-D float32 CPU tensor");
  TORCH_CHECK(labels.dim() == 1 && labels.scalar_type() == at::kLong && labels.numel() == logits.size(0),
              "labels must be int64, one per row of logits");
  logits = logits.contiguous();
  labels = labels.contiguous();
  const int64_t N = logits.size(0), C = logits.size(1);
  TORCH_CHECK(C > 0 || N == 0, "logits need at least one class");
  const float* z = logits.data_ptr<float>();
  const int64_t* y = labels.data_ptr<int64_t>();
  for (int64_t i = 0; i < N; ++i)  // IndexError, as torch's cross_entropy raises
    TORCH_CHECK_INDEX(y[i] >= 0 && y[i] < C, "label ", y[i], " out of range for ", C, " classes");
  double loss = 0.0;
  int64_t correct = 0;
  for (int64_t i = 0; i < N; ++i) {
    const float* row = z + i * C;
    int64_t best = 0;
    float m = row[0];
    for (int64_t c = 1; c < C; ++c)
      if (!std::isnan(m) && (std::isnan(row[c]) || row[c] > m)) {
        m = row[c];
        best = c;
      }
    correct += best == y[i];
    float s = 0.0f;  // a NaN or infinite maximum gives NaN, as torch's log_softmax does
#if defined(__AVX512F__)
    if (std::isfinite(m)) {  // no NaN in the row, every row[c] - m in [-inf, 0]: 16 classes at a time
      __m512 acc = _mm512_setzero_ps();
      const __m512 mv = _mm512_set1_ps(m);
      for (int64_t c = 0; c < C; c += 16) {
        const __mmask16 k = C - c >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (C - c)) - 1);
        acc = _mm512_mask_add_ps(acc, k, acc, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + c), mv)));
      }
      s = _mm512_reduce_add_ps(acc);
    } else
#endif
    for (int64_t c = 0; c < C; ++c) s += std::exp(row[c] - m);
    loss += static_cast<double>((std::log(s) + m) - row[y[i]]);
  }
  return {loss, correct};
}

// The same chain validated once and kept: `forward` costs one small Python call, and the
// activation buffers are allocated once per batch size and reused (a call that finds them in
// use by another thread allocates its own).
struct Chain {
  ChainSpec spec;
  int64_t in0;
  at::Tensor keep;  // optional int64 input columns (dead inputs compacted away)
  int64_t keep_max = -1;
  int64_t source = -1;  // with keep: the width of the input it is gathered from (-1: any wider than keep_max)
  Scatter scatter;  // the kept columns as source blocks for the one-pass gather (empty: index_select first)
  mutable Buffers bufs;
  mutable std::mutex mu;
  Chain(int64_t in, std::vector<at::Tensor> rowptrs, std::vector<at::Tensor> cols, std::vector<at::Tensor> vals,
        std::vector<at::Tensor> biases, std::vector<bool> relus, std::vector<int64_t> threads,
        std::vector<int64_t> tiles, std::vector<at::Tensor> prows, std::vector<at::Tensor> pcols,
        std::vector<at::Tensor> pvals, std::vector<int64_t> pws)
      : spec(make_spec(in, rowptrs, cols, vals, biases, relus, threads, tiles, prows, pcols, pvals, pws, true)),
        in0(in) {}
  // Not while another thread runs forward on this chain (a compiled model sets it once, before any call).
  void set_keep(at::Tensor k, int64_t source_features) {
    TORCH_CHECK(k.scalar_type() == at::kLong && k.dim() == 1 && k.numel() == in0, "keep must be int64 of length ", in0);
    TORCH_CHECK(k.numel() == 0 || k.min().item<int64_t>() >= 0, "keep indices must be >= 0");
    at::Tensor own = k.clone(at::MemoryFormat::Contiguous);  // the caller may edit theirs later
    const int64_t own_max = own.numel() ? own.max().item<int64_t>() : -1;
    Scatter map(own.data_ptr<int64_t>(), own.numel());  // may throw: nothing is replaced before it exists
    keep = std::move(own);
    keep_max = own_max;
    source = source_features;
    scatter = std::move(map);
  }
  at::Tensor forward(at::Tensor X, bool batch_major_input, bool batch_major_output, int64_t max_threads) const {
    TORCH_CHECK(max_threads >= 1 || max_threads == -1, "max_threads must be >= 1 (or -1: each layer's own)");
    const at::Tensor* k = keep.defined() ? &keep : nullptr;
    TORCH_CHECK(X.dim() == 2, "X must be 2-D, got ", X.dim(), "-D");
    TORCH_CHECK(!k || X.size(batch_major_input ? 1 : 0) > keep_max, "X has ", X.size(batch_major_input ? 1 : 0),
                " input features; the chain reads feature ", keep_max);
    TORCH_CHECK(!k || source < 0 || X.size(batch_major_input ? 1 : 0) == source, "X has ",
                X.size(batch_major_input ? 1 : 0), " input features; the chain takes ", source);
    std::unique_lock<std::mutex> lock(mu, std::try_to_lock);
    return run_spec(spec, X, batch_major_input, batch_major_output, max_threads, k, lock.owns_lock() ? &bufs : nullptr,
                    &scatter);
  }
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.attr("CHUNK") = CHUNK;  // a chain runs batches above this many samples in chunks of this many
  m.def("transpose", &transpose, "(B, F) -> (F, B) float32, blocked");
  m.def("chain_forward", &chain_forward, "CSR/dense layer chain on feature-major activations (in, B) -> (out, B)");
  m.def("csr_onto", &csr_onto, "relu?(base + CSR W @ X) on feature-major X (in, B) -> fresh (out, B)");
  m.def("cut_weight", &cut_weight, "(positions >= k, weight * that) of int32 positions and a float32 weight");
  m.def("label_stats", &label_stats, "(summed cross-entropy, correct argmax count) of (N, C) logits and labels");
  m.def("panelize", &panelize, "CSR -> column panels grouped by count [meta int32, byte offsets uint16, values]");
  pybind11::class_<Chain>(m, "Chain", pybind11::module_local())
      .def(pybind11::init<int64_t, std::vector<at::Tensor>, std::vector<at::Tensor>, std::vector<at::Tensor>,
                          std::vector<at::Tensor>, std::vector<bool>, std::vector<int64_t>, std::vector<int64_t>,
                          std::vector<at::Tensor>, std::vector<at::Tensor>, std::vector<at::Tensor>,
                          std::vector<int64_t>>())
      .def("set_keep", &Chain::set_keep, "input columns (int64) the first layer reads, of an input this wide (-1: any)",
           pybind11::arg("keep"), pybind11::arg("source_features") = -1)
      .def("forward", &Chain::forward, pybind11::arg("x"), pybind11::arg("batch_major_input"),
           pybind11::arg("batch_major_output") = false, pybind11::arg("max_threads") = -1,
           pybind11::call_guard<pybind11::gil_scoped_release>());
}
