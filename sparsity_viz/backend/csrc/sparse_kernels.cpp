// Native CPU kernels for sparsity_viz's sparse backend.
//
// Activations are stored features x batch ("feature-major"): X is (in, B), row-major,
// so one weight touches a contiguous run of samples. Each output row is computed
// for a tile of W samples held in registers (W = 64, 32, 16, 8, 4, then single samples), with the
// bias and ReLU fused into the store. The same template runs CSR rows (int16 or
// int32 column indices, int32 row pointers) and dense rows (column = k), so a whole
// MLP can run in one native call (`chain_forward`) at any batch size.
// Work is split over chunks of output rows (or of sample tiles, for layers with few rows)
// through at::parallel_for on torch's own OpenMP pool: the extension is compiled with
// -fopenmp, and the loader reuses the libgomp.so.1 torch already loaded (one pool; see
// docs/backend.md#build). Chunks are claimed from an atomic counter, so a thread whose
// core is busy with another process and starts late finds less (or nothing) left to do.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#if defined(__AVX__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

struct Layer {
  const int32_t* rowptr;  // (out + 1,) or nullptr for dense
  const void* col;        // (nnz,) int16 or int32, or nullptr for dense
  bool col16;
  const float* val;       // (nnz,) for CSR, (out, in) row-major for dense
  const float* bias;      // (out,) or nullptr
  int64_t out, in;
  bool relu;
  // column panels (optional): the same nonzeros regrouped by panels of `pw` input
  // features; prow is (npan, out + 1) absolute offsets into pcol (panel-local uint16
  // columns) and pval. Used for sample tiles of >= 16, so that the panel of inputs a
  // tile reads (pw x tile floats) stays in L1 while every row walks through it.
  const int32_t* prow = nullptr;
  const uint16_t* pcol = nullptr;
  const float* pval = nullptr;
  int64_t pw = 0, npan = 0;
};

// GCC/Clang vector extensions: the accumulators of one tile live in registers
// (AVX-512 zmm, or pairs of AVX2 ymm, or SSE, whatever -march gives).
typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));
typedef float v4 __attribute__((vector_size(16)));

// unaligned loads / stores (memcpy compiles to vmovups)
template <typename V>
inline V load_v(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <typename V>
inline void store_v(float* p, V v) { std::memcpy(p, &v, sizeof(V)); }

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
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    V a = acc[0][j];
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) a += acc[u][j];
    a += b;
    if (L.relu) a = a > 0.0f ? a : V{};
    store_v<V>(y + j * LANES, a);
  }
}

// Rows [r0, r1) for the W = NV * lanes(V) samples at b0, panel by panel: the partial
// sums of a row go through Y (first panel starts from the bias, the last applies ReLU).
// Within a panel, U accumulator sets take consecutive nonzeros (U * NV FMA chains).
template <typename V, int NV>
inline void panel_tile(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t r0, int64_t r1,
                       int64_t b0) {
  constexpr int LANES = sizeof(V) / sizeof(float);
  constexpr int U = NV >= 4 ? 2 : 8 / NV;
  const int64_t ld = L.out + 1;
  for (int64_t q = 0; q < L.npan; ++q) {
    const float* xb = X + q * L.pw * ldx + b0;
    const int32_t* rp = L.prow + q * ld;
    const bool first = q == 0, last = q == L.npan - 1;
    for (int64_t r = r0; r < r1; ++r) {
      float* y = Y + r * ldy + b0;
      V acc[U][NV];
      if (first) {
        const float b = L.bias ? L.bias[r] : 0.0f;
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[0][j] = V{} + b;
      } else {
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[0][j] = load_v<V>(y + j * LANES);
      }
#pragma GCC unroll 8
      for (int u = 1; u < U; ++u)
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[u][j] = V{};
      int64_t p = rp[r];
      const int64_t p1 = rp[r + 1];
      for (; p + U <= p1; p += U) {
#pragma GCC unroll 8
        for (int u = 0; u < U; ++u) {
          const float v = L.pval[p + u];
          const float* x = xb + static_cast<int64_t>(L.pcol[p + u]) * ldx;
#pragma GCC unroll 8
          for (int j = 0; j < NV; ++j) acc[u][j] += v * load_v<V>(x + j * LANES);
        }
      }
      for (; p < p1; ++p) {
        const float v = L.pval[p];
        const float* x = xb + static_cast<int64_t>(L.pcol[p]) * ldx;
#pragma GCC unroll 8
        for (int j = 0; j < NV; ++j) acc[0][j] += v * load_v<V>(x + j * LANES);
      }
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) {
        V a = acc[0][j];
#pragma GCC unroll 8
        for (int u = 1; u < U; ++u) a += acc[u][j];
        if (last && L.relu) a = a > 0.0f ? a : V{};
        store_v<V>(y + j * LANES, a);
      }
    }
  }
}

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
      v16 a0 = v16{}, a1 = v16{}, a2 = v16{}, a3 = v16{};
      for (; k + 64 <= n; k += 64) {
        a0 += load_v<v16>(w + k) * load_v<v16>(xb + k);
        a1 += load_v<v16>(w + k + 16) * load_v<v16>(xb + k + 16);
        a2 += load_v<v16>(w + k + 32) * load_v<v16>(xb + k + 32);
        a3 += load_v<v16>(w + k + 48) * load_v<v16>(xb + k + 48);
      }
      for (; k + 16 <= n; k += 16) a0 += load_v<v16>(w + k) * load_v<v16>(xb + k);
      const v16 a = (a0 + a1) + (a2 + a3);
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) s0 += a[j];
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
  Y[r * ldy + b0] = (L.relu && s < 0.0f) ? 0.0f : s;
}

// rows [r0, r1) for every sample: tiles of `tile` (64, 32 or 16) samples, then the
// remainder in halving widths and finally single samples
template <bool DENSE, typename IT>
void rows_all(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B, int64_t r0, int64_t r1,
              int64_t tile) {
  int64_t b0 = 0;
  if constexpr (!DENSE) {
    if (L.npan > 0) {
      if (tile >= 128)
        for (; b0 + 128 <= B; b0 += 128) panel_tile<v16, 8>(L, X, ldx, Y, ldy, r0, r1, b0);
      if (tile >= 64)
        for (; b0 + 64 <= B; b0 += 64) panel_tile<v16, 4>(L, X, ldx, Y, ldy, r0, r1, b0);
      if (tile >= 32)
        for (; b0 + 32 <= B; b0 += 32) panel_tile<v16, 2>(L, X, ldx, Y, ldy, r0, r1, b0);
      for (; b0 + 16 <= B; b0 += 16) panel_tile<v16, 1>(L, X, ldx, Y, ldy, r0, r1, b0);
    }
  }
  if (tile >= 128)
    for (; b0 + 128 <= B; b0 += 128)
      for (int64_t r = r0; r < r1; ++r) row_tile<v16, 8, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  if (tile >= 64)
    for (; b0 + 64 <= B; b0 += 64)
      for (int64_t r = r0; r < r1; ++r) row_tile<v16, 4, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  if (tile >= 32)
    for (; b0 + 32 <= B; b0 += 32)
      for (int64_t r = r0; r < r1; ++r) row_tile<v16, 2, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  for (; b0 + 16 <= B; b0 += 16)
    for (int64_t r = r0; r < r1; ++r) row_tile<v16, 1, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
  if (b0 + 8 <= B) {
    for (int64_t r = r0; r < r1; ++r) row_tile<v8, 1, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
    b0 += 8;
  }
  if (b0 + 4 <= B) {
    for (int64_t r = r0; r < r1; ++r) row_tile<v4, 1, DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
    b0 += 4;
  }
  for (; b0 < B; ++b0)
    for (int64_t r = r0; r < r1; ++r) row_one<DENSE, IT>(L, X, ldx, Y, ldy, r, b0);
}

void run_rows(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B, int64_t r0, int64_t r1,
              int64_t tile) {
  if (!L.rowptr) rows_all<true, int32_t>(L, X, ldx, Y, ldy, B, r0, r1, tile);
  else if (L.col16) rows_all<false, int16_t>(L, X, ldx, Y, ldy, B, r0, r1, tile);
  else rows_all<false, int32_t>(L, X, ldx, Y, ldy, B, r0, r1, tile);
}

#if defined(__AVX__)
// 8 x 8 block transpose in AVX registers: src rows of stride ls -> dst rows of stride ld
inline void transpose8(const float* src, int64_t ls, float* dst, int64_t ld) {
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
  _mm256_storeu_ps(dst + 0 * ld, _mm256_permute2f128_ps(s0, s4, 0x20));
  _mm256_storeu_ps(dst + 1 * ld, _mm256_permute2f128_ps(s1, s5, 0x20));
  _mm256_storeu_ps(dst + 2 * ld, _mm256_permute2f128_ps(s2, s6, 0x20));
  _mm256_storeu_ps(dst + 3 * ld, _mm256_permute2f128_ps(s3, s7, 0x20));
  _mm256_storeu_ps(dst + 4 * ld, _mm256_permute2f128_ps(s0, s4, 0x31));
  _mm256_storeu_ps(dst + 5 * ld, _mm256_permute2f128_ps(s1, s5, 0x31));
  _mm256_storeu_ps(dst + 6 * ld, _mm256_permute2f128_ps(s2, s6, 0x31));
  _mm256_storeu_ps(dst + 7 * ld, _mm256_permute2f128_ps(s3, s7, 0x31));
}
#endif

// (B, F) row-major -> (F, B) row-major, features [f0, f1), in 8 x 8 register blocks
void transpose_range(const float* src, float* dst, int64_t B, int64_t F, int64_t f0, int64_t f1, int64_t ld) {
  int64_t b = 0;
#if defined(__AVX__)
  for (; b + 8 <= B; b += 8) {
    int64_t f = f0;
    for (; f + 8 <= f1; f += 8) transpose8(src + b * F + f, F, dst + f * ld + b, ld);
    for (; f < f1; ++f)
      for (int64_t i = 0; i < 8; ++i) dst[f * ld + b + i] = src[(b + i) * F + f];
  }
#endif
  for (; b < B; ++b)
    for (int64_t f = f0; f < f1; ++f) dst[f * ld + b] = src[b * F + f];
}

int64_t clamp_threads(int64_t threads);

void transpose_into(const float* src, float* dst, int64_t B, int64_t F, int64_t threads, int64_t ld) {
  const int64_t n = clamp_threads(threads);
  if (n <= 1 || F < 64 || B * F < 16384) {  // small copies: a fork/join costs more
    transpose_range(src, dst, B, F, 0, F, ld);
    return;
  }
  const int64_t grain = ((F + n - 1) / n + 7) / 8 * 8;
  at::parallel_for(0, F, grain, [&](int64_t f0, int64_t f1) { transpose_range(src, dst, B, F, f0, f1, ld); });
}

int64_t clamp_threads(int64_t threads) {
  return std::max<int64_t>(1, std::min<int64_t>(threads, at::get_num_threads()));
}

// One layer over n threads. Work units: chunks of rows when the layer has >= 16 rows per
// thread, else chunks of sample tiles (multiples of 16 samples); about 4 per thread, claimed
// dynamically (an atomic counter) so that the split adapts to a thread that starts late.
void run_layer(const Layer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B, int64_t threads,
               int64_t tile) {
  const int64_t n = clamp_threads(threads);
  const bool by_rows = L.out >= 16 * n;
  if (n <= 1 || at::in_parallel_region() || (!by_rows && B < 32)) {
    run_rows(L, X, ldx, Y, ldy, B, 0, L.out, tile);
    return;
  }
  const int64_t extent = by_rows ? L.out : B;
  int64_t step = (extent + 4 * n - 1) / (4 * n);
  step = by_rows ? std::max<int64_t>(step, 8) : std::max<int64_t>((step + 15) / 16 * 16, 16);
  const int64_t chunks = (extent + step - 1) / step;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
      const int64_t a = c * step, b = std::min(extent, a + step);
      if (by_rows) run_rows(L, X, ldx, Y, ldy, B, a, b, tile);
      else run_rows(L, X + a, ldx, Y + a, ldy, b - a, 0, L.out, tile);
    }
  });
}

}  // namespace

// (B, F) -> (F, B), blocked.
torch::Tensor transpose(torch::Tensor X, int64_t threads) {
  TORCH_CHECK(X.dim() == 2 && X.scalar_type() == at::kFloat && X.device().is_cpu(), "X must be a 2-D float32 CPU tensor");
  X = X.contiguous();
  torch::Tensor out = torch::empty({X.size(1), X.size(0)}, X.options());
  transpose_into(X.data_ptr<float>(), out.data_ptr<float>(), X.size(0), X.size(1), threads, X.size(0));
  return out;
}

// Regroup a CSR (int32 rowptr, int16/int32 col, float val) into column panels of `pw`
// input features: returns [prow (npan * (out + 1)) int32, pcol (nnz) uint16 panel-local,
// pval (nnz) float32].
std::vector<torch::Tensor> panelize(torch::Tensor rowptr, torch::Tensor col, torch::Tensor val, int64_t in, int64_t pw) {
  TORCH_CHECK(rowptr.scalar_type() == at::kInt && rowptr.is_contiguous(), "rowptr must be contiguous int32");
  TORCH_CHECK(col.is_contiguous() && (col.scalar_type() == at::kShort || col.scalar_type() == at::kInt),
              "col must be contiguous int16 or int32");
  TORCH_CHECK(val.scalar_type() == at::kFloat && val.is_contiguous() && val.numel() == col.numel(), "bad values");
  TORCH_CHECK(pw >= 1 && pw <= 65536 && in >= 1, "panel width must be in [1, 65536]");
  const int64_t out = rowptr.numel() - 1, nnz = col.numel();
  const int64_t npan = (in + pw - 1) / pw;
  const int32_t* rp = rowptr.data_ptr<int32_t>();
  auto colat = [&](int64_t p) -> int64_t {
    return col.scalar_type() == at::kShort ? col.data_ptr<int16_t>()[p] : col.data_ptr<int32_t>()[p];
  };
  torch::Tensor prow = torch::zeros({npan * (out + 1)}, rowptr.options());
  torch::Tensor pcol = torch::empty({nnz}, torch::TensorOptions().dtype(at::kUInt16));
  torch::Tensor pval = torch::empty({nnz}, val.options());
  int32_t* pr = prow.data_ptr<int32_t>();
  uint16_t* pc = reinterpret_cast<uint16_t*>(pcol.data_ptr());
  float* pv = pval.data_ptr<float>();
  const float* v = val.data_ptr<float>();
  // counts per (panel, row), then offsets in panel-major, row-minor order
  std::vector<int64_t> cnt(npan * out, 0);
  for (int64_t r = 0; r < out; ++r)
    for (int64_t p = rp[r]; p < rp[r + 1]; ++p) {
      const int64_t c = colat(p);
      TORCH_CHECK(c >= 0 && c < in, "column index out of range");
      ++cnt[(c / pw) * out + r];
    }
  std::vector<int64_t> pos(npan * out);
  int64_t acc = 0;
  for (int64_t q = 0; q < npan; ++q) {
    for (int64_t r = 0; r < out; ++r) {
      pr[q * (out + 1) + r] = static_cast<int32_t>(acc);
      pos[q * out + r] = acc;
      acc += cnt[q * out + r];
    }
    pr[q * (out + 1) + out] = static_cast<int32_t>(acc);
  }
  for (int64_t r = 0; r < out; ++r)
    for (int64_t p = rp[r]; p < rp[r + 1]; ++p) {
      const int64_t c = colat(p), q = c / pw;
      const int64_t d = pos[q * out + r]++;
      pc[d] = static_cast<uint16_t>(c - q * pw);
      pv[d] = v[p];
    }
  return {prow, pcol, pval};
}

namespace {

// A validated chain of layers whose tensors are kept alive by the owner.
struct ChainSpec {
  std::vector<Layer> layers;
  std::vector<int64_t> threads, tiles;
  std::vector<torch::Tensor> keep;  // every tensor the raw pointers point into
};

ChainSpec make_spec(int64_t in0, const std::vector<torch::Tensor>& rowptrs, const std::vector<torch::Tensor>& cols,
                    const std::vector<torch::Tensor>& vals, const std::vector<torch::Tensor>& biases,
                    const std::vector<bool>& relus, const std::vector<int64_t>& threads,
                    const std::vector<int64_t>& tiles, const std::vector<torch::Tensor>& prows,
                    const std::vector<torch::Tensor>& pcols, const std::vector<torch::Tensor>& pvals,
                    const std::vector<int64_t>& pws) {
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
      L.out = rowptrs[i].numel() - 1;
      L.in = cur_in;
      L.rowptr = rowptrs[i].data_ptr<int32_t>();
      L.col = cols[i].data_ptr();
      L.col16 = cols[i].scalar_type() == at::kShort;
      if (!prows.empty() && prows[i].numel() > 0) {
        TORCH_CHECK(pws[i] >= 1, "panel width must be positive");
        const int64_t npan = (L.in + pws[i] - 1) / pws[i];
        TORCH_CHECK(prows[i].scalar_type() == at::kInt && prows[i].is_contiguous() && prows[i].numel() == npan * (L.out + 1),
                    "panel row pointers must be contiguous int32 of npan * (out + 1)");
        TORCH_CHECK(pcols[i].scalar_type() == at::kUInt16 && pcols[i].is_contiguous() &&
                        pcols[i].numel() == vals[i].numel(), "panel columns must be contiguous uint16 of length nnz");
        TORCH_CHECK(pvals[i].scalar_type() == at::kFloat && pvals[i].is_contiguous() && pvals[i].numel() == vals[i].numel(),
                    "panel values must be contiguous float32 of length nnz");
        L.prow = prows[i].data_ptr<int32_t>();
        L.pcol = reinterpret_cast<const uint16_t*>(pcols[i].data_ptr());
        L.pval = pvals[i].data_ptr<float>();
        L.pw = pws[i];
        L.npan = npan;
        s.keep.insert(s.keep.end(), {prows[i], pcols[i], pvals[i]});
      }
      TORCH_CHECK(rowptrs[i].numel() >= 1, "rowptr must have out + 1 entries");
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
  std::vector<torch::Tensor> slots;
  torch::Tensor get(size_t k, int64_t rows, int64_t cols, const torch::TensorOptions& opts) {
    if (slots.size() <= k) slots.resize(k + 1);
    torch::Tensor& t = slots[k];
    if (!t.defined() || t.size(0) != rows || t.size(1) != cols) t = torch::empty({rows, cols}, opts);
    return t;
  }
};

// A reusable buffer from `bufs`, or a fresh tensor when there is none (one-shot calls).
inline torch::Tensor scratch(Buffers* bufs, size_t k, int64_t rows, int64_t cols, const torch::TensorOptions& opts) {
  return bufs ? bufs->get(k, rows, cols, opts) : torch::empty({rows, cols}, opts);
}

// (B, Fx) batch-major -> (keep.numel(), B) feature-major with column keep[f] as feature f.
void gather_transpose(const float* src, int64_t Fx, const int64_t* keep, int64_t F, float* dst, int64_t B, int64_t ld) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f = 0; f < F; ++f) dst[f * ld + b] = src[b * Fx + keep[f]];
}

// Run the chain on X. `keep` (optional int64): input columns the first layer reads (dead
// inputs compacted away). `batch_major_output`: return (B, out_last) instead of (out_last, B).
// `max_threads` (>= 1) caps every layer's thread count for this call. The returned tensor is
// always freshly allocated (never one of the reused buffers).
torch::Tensor run_spec(const ChainSpec& s, torch::Tensor X, bool batch_major_input, bool batch_major_output = false,
                       int64_t max_threads = 1 << 20, const torch::Tensor* keep = nullptr, Buffers* bufs = nullptr) {
  TORCH_CHECK(X.dim() == 2 && X.scalar_type() == at::kFloat && X.device().is_cpu(), "X must be a 2-D float32 CPU tensor");
  const bool gather = keep && keep->defined() && keep->numel() > 0;
  const int64_t B = batch_major_input ? X.size(0) : X.size(1);
  const int64_t Fx = batch_major_input ? X.size(1) : X.size(0);
  const int64_t F = gather ? keep->numel() : Fx;
  const int64_t ldp = padded_ld(B);
  const auto opts = X.options();
  auto th = [&](size_t i) { return std::min<int64_t>(s.threads[i], max_threads); };
  torch::Tensor cur;
  int64_t ldc = B;
  if (gather && !(batch_major_input && B < 64)) {
    X = X.index_select(batch_major_input ? 1 : 0, *keep);  // (B, F) or (F, B)
  }
  if (gather && batch_major_input && B < 64) {
    TORCH_CHECK(keep->scalar_type() == at::kLong && keep->is_contiguous(), "keep must be contiguous int64");
    X = X.contiguous();
    cur = scratch(bufs, 0, F, B, opts);
    gather_transpose(X.data_ptr<float>(), Fx, keep->data_ptr<int64_t>(), F, cur.data_ptr<float>(), B, B);
  } else if (!batch_major_input) {
    if (X.stride(1) != 1 || (F > 1 && X.stride(0) < B)) X = X.contiguous();
    cur = X;
    ldc = F > 1 ? X.stride(0) : B;
    if (ldp != B && ldc % 64 == 0 && !s.layers.empty() && s.layers[0].npan > 0) {
      // repack into the padded layout (one streaming copy) so the panels stay in L1
      torch::Tensor buf = scratch(bufs, 0, F, ldp, opts);
      buf.narrow(1, 0, B).copy_(X);
      cur = buf;
      ldc = ldp;
    }
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
    torch::Tensor out = lastl && !batch_major_output ? torch::empty({L.out, ldo}, opts)
                                                     : scratch(bufs, i + 1, L.out, ldo, opts);
    if (B > 0 && L.out > 0) run_layer(L, cur.data_ptr<float>(), ldc, out.data_ptr<float>(), ldo, B, th(i), s.tiles[i]);
    cur = out;
    ldc = ldo;
  }
  if (batch_major_output) {
    const int64_t O = cur.size(0);
    torch::Tensor res = torch::empty({B, O}, opts);
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
// with vals[i] = W (out, in). tiles[i] is the sample tile width (64, 32 or 16); the
// optional panel lists (from `panelize`) enable the column-panel path for tiles >= 16.
torch::Tensor chain_forward(torch::Tensor X, std::vector<torch::Tensor> rowptrs, std::vector<torch::Tensor> cols,
                            std::vector<torch::Tensor> vals, std::vector<torch::Tensor> biases,
                            std::vector<bool> relus, std::vector<int64_t> threads, std::vector<int64_t> tiles,
                            bool batch_major_input, std::vector<torch::Tensor> prows,
                            std::vector<torch::Tensor> pcols, std::vector<torch::Tensor> pvals,
                            std::vector<int64_t> pws) {
  TORCH_CHECK(X.dim() == 2, "X must be 2-D");
  const int64_t in0 = batch_major_input ? X.size(1) : X.size(0);
  ChainSpec s = make_spec(in0, rowptrs, cols, vals, biases, relus, threads, tiles, prows, pcols, pvals, pws);
  return run_spec(s, X, batch_major_input);
}

// The same chain validated once and kept: `forward` costs one small Python call, and the
// activation buffers are allocated once per batch size and reused (a call that finds them in
// use by another thread allocates its own).
struct Chain {
  ChainSpec spec;
  int64_t in0;
  torch::Tensor keep;  // optional int64 input columns (dead inputs compacted away)
  int64_t keep_max = -1;
  mutable Buffers bufs;
  mutable std::mutex mu;
  Chain(int64_t in, std::vector<torch::Tensor> rowptrs, std::vector<torch::Tensor> cols, std::vector<torch::Tensor> vals,
        std::vector<torch::Tensor> biases, std::vector<bool> relus, std::vector<int64_t> threads,
        std::vector<int64_t> tiles, std::vector<torch::Tensor> prows, std::vector<torch::Tensor> pcols,
        std::vector<torch::Tensor> pvals, std::vector<int64_t> pws)
      : spec(make_spec(in, rowptrs, cols, vals, biases, relus, threads, tiles, prows, pcols, pvals, pws)), in0(in) {}
  void set_keep(torch::Tensor k) {
    TORCH_CHECK(k.scalar_type() == at::kLong && k.dim() == 1 && k.numel() == in0, "keep must be int64 of length ", in0);
    TORCH_CHECK(k.numel() == 0 || k.min().item<int64_t>() >= 0, "keep indices must be >= 0");
    keep = k.contiguous();
    keep_max = k.numel() ? k.max().item<int64_t>() : -1;
  }
  torch::Tensor forward(torch::Tensor X, bool batch_major_input, bool batch_major_output, int64_t max_threads) const {
    TORCH_CHECK(max_threads >= 1, "max_threads must be >= 1");
    const torch::Tensor* k = keep.defined() ? &keep : nullptr;
    TORCH_CHECK(X.dim() == 2 && (!k || X.size(batch_major_input ? 1 : 0) > keep_max), "X has ",
                X.dim() == 2 ? X.size(batch_major_input ? 1 : 0) : -1, " input features; the chain reads feature ", keep_max);
    std::unique_lock<std::mutex> lock(mu, std::try_to_lock);
    return run_spec(spec, X, batch_major_input, batch_major_output, max_threads, k, lock.owns_lock() ? &bufs : nullptr);
  }
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("transpose", &transpose, "(B, F) -> (F, B) float32, blocked");
  m.def("chain_forward", &chain_forward, "CSR/dense layer chain on feature-major activations (in, B) -> (out, B)");
  m.def("panelize", &panelize, "CSR -> column panels [prow, pcol uint16, pval]");
  pybind11::class_<Chain>(m, "Chain", pybind11::module_local())
      .def(pybind11::init<int64_t, std::vector<torch::Tensor>, std::vector<torch::Tensor>, std::vector<torch::Tensor>,
                          std::vector<torch::Tensor>, std::vector<bool>, std::vector<int64_t>, std::vector<int64_t>,
                          std::vector<torch::Tensor>, std::vector<torch::Tensor>, std::vector<torch::Tensor>,
                          std::vector<int64_t>>())
      .def("set_keep", &Chain::set_keep, "input columns (int64) the first layer reads")
      .def("forward", &Chain::forward, pybind11::arg("x"), pybind11::arg("batch_major_input"),
           pybind11::arg("batch_major_output") = false, pybind11::arg("max_threads") = 1 << 20,
           pybind11::call_guard<pybind11::gil_scoped_release>());
}
