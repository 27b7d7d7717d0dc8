// int8-weight sparse kernels for sparsity_viz (a separate extension from sparse_kernels.cpp,
// so editing one never invalidates the other's cached build).
//
// Weights: CSR with int32 row pointers, int16 or int32 column indices and int8 values q with a
// per-row (per output channel) fp32 scale s: w = q * s, symmetric, q in [-127, 127].
// Activations: fp32, feature-major (in, B) row-major, as in sparse_kernels.cpp.
// Arithmetic: y[r] = s[r] * sum_p float(q_p) * x[c_p] + bias[r] (fp32 accumulation; the row
// scale is applied once per output, so the result equals F.linear with the fake-quantized weight
// q * s up to fp32 rounding). For tiles of >= 4 samples a block of rows is first converted
// int8 -> fp32 (one vectorised pass) into a small L1-resident buffer, then every sample tile of
// those rows runs the same register-tiled FMA loop as the fp32 kernel (64/32/16/8/4 samples),
// bias + ReLU fused into the store. Fewer than 4 samples: the layer's 16-row slices of int8 codes
// (slices.h), or where it has none an AVX-512 gather dot product straight from the int8 values (16
// codes widened per step). What int8 changes is the bytes of weights read from memory (1 byte value
// + 2 byte column per nonzero instead of 4 + 2; a slice slot 1 + 1 instead of 4 + 1), not the
// arithmetic. Serial (no at::parallel_for): the project runs one torch thread.
#include "torch_lite.h"
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "align.h"
#include "vec.h"
#include "slices.h"
#include "transpose.h"

namespace {

struct QLayer {
  const int32_t* rowptr;  // (out + 1,)
  const void* col;        // (nnz,) int16 or int32
  bool col16;
  const int8_t* q;        // (nnz,) int8 values
  const float* scale;     // (out,) per-row scale
  const float* bias;      // (out,) or nullptr
  int64_t out, in;
  bool relu;
  Slices<int8_t>* slices = nullptr;  // calls of 1-3 samples (slices.h), built on first use
};

// One row (n nonzeros: decoded values w, columns c) for W = NV * lanes(V) samples of xb.
template <typename V, int NV, typename IT>
inline void row_tile(const float* w, const IT* c, int64_t n, const float* xb, int64_t ldx, float s, float b, bool relu,
                     float* y) {
  constexpr int LANES = sizeof(V) / sizeof(float);
  constexpr int U = NV >= 8 ? 1 : 8 / NV;
  V acc[U][NV];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[u][j] = V{};
  int64_t p = 0;
  for (; p + U <= n; p += U) {
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      const float v = w[p + u];
      const float* x = xb + static_cast<int64_t>(c[p + u]) * ldx;
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[u][j] += v * load_v<V>(x + j * LANES);
    }
  }
  for (; p < n; ++p) {
    const float v = w[p];
    const float* x = xb + static_cast<int64_t>(c[p]) * ldx;
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[0][j] += v * load_v<V>(x + j * LANES);
  }
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) {
    V a = acc[0][j];
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) a += acc[u][j];
    a = a * s + b;
    if (relu) a = a < 0.0f ? V{} : a;  // NaN stays NaN, as in torch.relu
    store_v<V>(y + j * LANES, a);
  }
}

// The same for the W samples at xb in this target's widest vectors (Tile<W>: one pass on AVX-512).
template <int W, typename IT>
inline void tile_row(const float* w, const IT* c, int64_t n, const float* xb, int64_t ldx, float s, float b, bool relu,
                     float* y) {
  using T = Tile<W>;
  for (int h = 0; h < T::PASSES; ++h) {
    const int64_t o = h * T::NV * T::LANES;
    row_tile<typename T::V, T::NV, IT>(w, c, n, xb + o, ldx, s, b, relu, y + o);
  }
}

inline float value(const float* w, int64_t p) { return w[p]; }
inline float value(const int8_t* w, int64_t p) { return static_cast<float>(w[p]); }

#if defined(__AVX512F__)
inline __m512 load16(const float* w) { return _mm512_loadu_ps(w); }
inline __m512 load16(const int8_t* w) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))));
}
#endif

// One row (values w: decoded fp32 or the int8 codes) for the single sample at xb (stride ldx).
template <typename WT, typename IT>
inline float row_one(const WT* w, const IT* c, int64_t n, const float* xb, int64_t ldx) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int64_t p = 0;
#if defined(__AVX512F__)
  if (n >= 16) {
    __m512 g0 = _mm512_setzero_ps(), g1 = _mm512_setzero_ps();
    const __m512i stride = _mm512_set1_epi32(static_cast<int32_t>(ldx));
    auto index16 = [&](int64_t q) -> __m512i {
      __m512i idx;
      if constexpr (sizeof(IT) == 2)
        idx = _mm512_cvtepi16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + q)));
      else
        idx = _mm512_loadu_si512(reinterpret_cast<const void*>(c + q));
      return ldx == 1 ? idx : _mm512_mullo_epi32(idx, stride);
    };
    for (; p + 32 <= n; p += 32) {
      g0 = _mm512_fmadd_ps(load16(w + p), _mm512_i32gather_ps(index16(p), xb, 4), g0);
      g1 = _mm512_fmadd_ps(load16(w + p + 16), _mm512_i32gather_ps(index16(p + 16), xb, 4), g1);
    }
    for (; p + 16 <= n; p += 16) g0 = _mm512_fmadd_ps(load16(w + p), _mm512_i32gather_ps(index16(p), xb, 4), g0);
    s0 += _mm512_reduce_add_ps(_mm512_add_ps(g0, g1));
  }
#endif
  for (; p + 4 <= n; p += 4) {
    s0 += value(w, p) * xb[static_cast<int64_t>(c[p]) * ldx];
    s1 += value(w, p + 1) * xb[static_cast<int64_t>(c[p + 1]) * ldx];
    s2 += value(w, p + 2) * xb[static_cast<int64_t>(c[p + 2]) * ldx];
    s3 += value(w, p + 3) * xb[static_cast<int64_t>(c[p + 3]) * ldx];
  }
  for (; p < n; ++p) s0 += value(w, p) * xb[static_cast<int64_t>(c[p]) * ldx];
  return (s0 + s1) + (s2 + s3);
}

constexpr int64_t CHUNK = 64;  // samples per chunk of a chained batch (Int8Chain::forward)
constexpr int64_t DECODE_FLOATS = 4096;  // decoded values per block of rows: 16 KB, stays in L1

// Rows [r0, r1) (already decoded into w, offset p0 = rowptr[r0]) for every sample.
template <typename IT>
void block_rows(const QLayer& L, const float* w, int64_t p0, const float* X, int64_t ldx, float* Y, int64_t ldy,
                int64_t B, int64_t r0, int64_t r1, int64_t tile) {
  const IT* col = static_cast<const IT*>(L.col);
  auto each = [&](auto&& fn) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t a = L.rowptr[r], n = L.rowptr[r + 1] - a;
      fn(r, w + (a - p0), col + a, n, L.scale[r], L.bias ? L.bias[r] : 0.0f);
    }
  };
  int64_t b0 = 0;
  if (tile >= 64)
    for (; b0 + 64 <= B; b0 += 64)
      each([&](int64_t r, const float* wr, const IT* cr, int64_t n, float s, float b) {
        tile_row<64, IT>(wr, cr, n, X + b0, ldx, s, b, L.relu, Y + r * ldy + b0);
      });
  if (tile >= 32)
    for (; b0 + 32 <= B; b0 += 32)
      each([&](int64_t r, const float* wr, const IT* cr, int64_t n, float s, float b) {
        tile_row<32, IT>(wr, cr, n, X + b0, ldx, s, b, L.relu, Y + r * ldy + b0);
      });
  for (; b0 + 16 <= B; b0 += 16)
    each([&](int64_t r, const float* wr, const IT* cr, int64_t n, float s, float b) {
      tile_row<16, IT>(wr, cr, n, X + b0, ldx, s, b, L.relu, Y + r * ldy + b0);
    });
  if (b0 + 8 <= B) {
    each([&](int64_t r, const float* wr, const IT* cr, int64_t n, float s, float b) {
      tile_row<8, IT>(wr, cr, n, X + b0, ldx, s, b, L.relu, Y + r * ldy + b0);
    });
    b0 += 8;
  }
  if (b0 + 4 <= B) {
    each([&](int64_t r, const float* wr, const IT* cr, int64_t n, float s, float b) {
      tile_row<4, IT>(wr, cr, n, X + b0, ldx, s, b, L.relu, Y + r * ldy + b0);
    });
    b0 += 4;
  }
  for (; b0 < B; ++b0)
    each([&](int64_t r, const float* wr, const IT* cr, int64_t n, float s, float b) {
      const float v = row_one<float, IT>(wr, cr, n, X + b0, ldx) * s + b;
      Y[r * ldy + b0] = (L.relu && v < 0.0f) ? 0.0f : v;
    });
}

// Fewer than 4 samples: by the layer's 16-row slices of int8 codes (slices.h; the row scale applied to each sum)
// where it has them, else gather dot products straight from the int8 codes (no decode pass).
template <typename IT>
void rows_int8(const QLayer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B) {
  const IT* col = static_cast<const IT*>(L.col);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  if (const Slices<int8_t>* S = ready_slices(L.slices, L.rowptr, col, L.q, L.out, L.in)) {
    for (int64_t b0 = 0; b0 < B; ++b0) {
      const float* x = slice_input(X + b0, ldx, L.in, S->nb);
      for (int64_t s = 0; 16 * s < L.out; ++s) {
        alignas(64) float o[16];
        _mm512_store_ps(o, slice_sums(*S, x, s));
        for (int64_t l = 0; l < 16 && 16 * s + l < L.out; ++l) {
          const int64_t r = 16 * s + l;
          const float v = o[l] * L.scale[r] + (L.bias ? L.bias[r] : 0.0f);
          Y[r * ldy + b0] = (L.relu && v < 0.0f) ? 0.0f : v;
        }
      }
    }
    return;
  }
#endif
  for (int64_t b0 = 0; b0 < B; ++b0)
    for (int64_t r = 0; r < L.out; ++r) {
      const int64_t a = L.rowptr[r], n = L.rowptr[r + 1] - a;
      const float v = row_one<int8_t, IT>(L.q + a, col + a, n, X + b0, ldx) * L.scale[r] + (L.bias ? L.bias[r] : 0.0f);
      Y[r * ldy + b0] = (L.relu && v < 0.0f) ? 0.0f : v;
    }
}

// The whole layer: blocks of rows whose nonzeros fit DECODE_FLOATS (at least one row per
// block), each decoded once and then run over every sample tile.
void run_layer(const QLayer& L, const float* X, int64_t ldx, float* Y, int64_t ldy, int64_t B, int64_t tile,
               std::vector<float>& buf) {
  if (B < 4) {
    if (L.col16) rows_int8<int16_t>(L, X, ldx, Y, ldy, B);
    else rows_int8<int32_t>(L, X, ldx, Y, ldy, B);
    return;
  }
  int64_t r0 = 0;
  while (r0 < L.out) {
    const int64_t p0 = L.rowptr[r0];
    int64_t r1 = r0 + 1;
    while (r1 < L.out && L.rowptr[r1 + 1] - p0 <= DECODE_FLOATS) ++r1;
    const int64_t n = L.rowptr[r1] - p0;
    float* w = aligned64(buf, n);
    const int8_t* q = L.q + p0;
    for (int64_t i = 0; i < n; ++i) w[i] = static_cast<float>(q[i]);  // one vectorised pass per block
    if (L.col16) block_rows<int16_t>(L, w, p0, X, ldx, Y, ldy, B, r0, r1, tile);
    else block_rows<int32_t>(L, w, p0, X, ldx, Y, ldy, B, r0, r1, tile);
    r0 = r1;
  }
}

}  // namespace

// A validated chain of int8 CSR layers (tensors kept alive); `forward` costs one small call.
struct Int8Chain {
  std::vector<QLayer> layers;
  std::vector<at::Tensor> keep;
  std::vector<std::unique_ptr<Slices<int8_t>>> slices;  // each layer's, built on its first call of 1-3 samples
  int64_t in0, tile;

  Int8Chain(int64_t in, std::vector<at::Tensor> rowptrs, std::vector<at::Tensor> cols,
            std::vector<at::Tensor> qvals, std::vector<at::Tensor> scales, std::vector<at::Tensor> biases,
            std::vector<bool> relus, int64_t tile_)
      : in0(in), tile(tile_) {
    const size_t n = qvals.size();
    TORCH_CHECK(rowptrs.size() == n && cols.size() == n && scales.size() == n && biases.size() == n &&
                    relus.size() == n,
                "Int8Chain: per-layer lists must have equal lengths");
    TORCH_CHECK(tile == 64 || tile == 32 || tile == 16, "Int8Chain: tile must be 64, 32 or 16");
    int64_t cur = in;
    for (size_t i = 0; i < n; ++i) {
      QLayer L{};
      TORCH_CHECK(rowptrs[i].scalar_type() == at::kInt && rowptrs[i].is_contiguous() && rowptrs[i].numel() >= 1,
                  "rowptr must be contiguous int32 of out + 1 entries");
      TORCH_CHECK(cols[i].is_contiguous() && (cols[i].scalar_type() == at::kShort || cols[i].scalar_type() == at::kInt),
                  "col indices must be contiguous int16 or int32");
      TORCH_CHECK(qvals[i].scalar_type() == at::kChar && qvals[i].is_contiguous() && qvals[i].numel() == cols[i].numel(),
                  "values must be contiguous int8 of length nnz");
      L.out = rowptrs[i].numel() - 1;
      L.in = cur;
      TORCH_CHECK(scales[i].scalar_type() == at::kFloat && scales[i].is_contiguous() && scales[i].numel() == L.out,
                  "scale must be contiguous float32 of length out");
      const int32_t* rp = rowptrs[i].data_ptr<int32_t>();
      TORCH_CHECK(rp[0] == 0 && rp[L.out] == cols[i].numel(), "rowptr must start at 0 and end at nnz");
      for (int64_t r = 0; r < L.out; ++r) TORCH_CHECK(rp[r] <= rp[r + 1], "rowptr must be non-decreasing");
      const int64_t nnz = cols[i].numel();
      for (int64_t p = 0; p < nnz; ++p) {
        const int64_t c = cols[i].scalar_type() == at::kShort ? cols[i].data_ptr<int16_t>()[p] : cols[i].data_ptr<int32_t>()[p];
        TORCH_CHECK(c >= 0 && c < L.in, "column index out of range in layer ", i);
      }
      L.rowptr = rp;
      L.col = cols[i].data_ptr();
      L.col16 = cols[i].scalar_type() == at::kShort;
      L.q = qvals[i].data_ptr<int8_t>();
      L.scale = scales[i].data_ptr<float>();
      if (biases[i].numel() > 0) {
        TORCH_CHECK(biases[i].scalar_type() == at::kFloat && biases[i].is_contiguous() && biases[i].numel() == L.out,
                    "bias must be contiguous float32 of length out");
        L.bias = biases[i].data_ptr<float>();
      }
      L.relu = relus[i];
      keep.insert(keep.end(), {rowptrs[i], cols[i], qvals[i], scales[i], biases[i]});
      slices.push_back(std::make_unique<Slices<int8_t>>());
      L.slices = slices.back().get();
      layers.push_back(L);
      cur = L.out;
    }
  }

  // X feature-major (in, B), or batch-major (B, in) when batch_major; returns (out_last, B).
  // Batches above CHUNK samples run CHUNK samples at a time through every layer, the activations
  // between layers in two contiguous (widest, CHUNK) buffers that stay in L2 (layer after layer over
  // the whole batch sent them through L3, and a fresh output per layer cost page faults); a batch-major
  // input is transposed a chunk at a time into the first of them (transpose.h; torch's X.t().contiguous()
  // of the whole batch took 12 / 74 us at batch 32 / 256, about a third of the call).
  at::Tensor forward(at::Tensor X, bool batch_major) const {
    TORCH_CHECK(X.dim() == 2 && X.scalar_type() == at::kFloat && X.device().is_cpu(), "X must be a 2-D float32 CPU tensor");
    X = X.contiguous();
    const int64_t F = batch_major ? X.size(1) : X.size(0), B = batch_major ? X.size(0) : X.size(1);
    TORCH_CHECK(F == in0, "expected ", in0, " input features, got ", F);
    thread_local std::vector<float> buf;  // the decoded block, reused across calls
    if (layers.empty()) return batch_major ? X.t().contiguous() : X.clone();
    at::Tensor Y = at::empty({layers.back().out, B}, X.options());
    int64_t widest = F;
    for (const QLayer& L : layers) widest = std::max(widest, L.out);
    const int64_t C = std::min(B, CHUNK);  // samples per chunk (the whole batch when it is smaller)
    thread_local std::vector<float> acts;
    float* const a0 = aligned64(acts, 2 * widest * C);
    float* const ping[2] = {a0, a0 + widest * C};  // (widest, C) each, 64-byte aligned (C is 64 or the batch)
    const float* x = X.data_ptr<float>();
    for (int64_t b0 = 0; b0 < B; b0 += C) {
      const int64_t nb = std::min(C, B - b0);
      const float* in = x + b0;  // feature-major: the chunk's columns of X
      int64_t ldi = B, k = 0;
      if (batch_major) {
        transpose_range(x + b0 * F, F, nb, nullptr, ping[0], C, 0, F);  // (F, nb)
        in = ping[0];
        ldi = C;
        k = 1;
      }
      for (size_t i = 0; i < layers.size(); ++i) {
        const bool last = i + 1 == layers.size();
        float* y = last ? Y.data_ptr<float>() + b0 : ping[k];
        const int64_t ldy = last ? B : C;
        if (layers[i].out > 0) run_layer(layers[i], in, ldi, y, ldy, nb, tile, buf);
        in = y;
        ldi = ldy;
        k ^= 1;
      }
    }
    return Y;
  }
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<Int8Chain>(m, "Int8Chain", pybind11::module_local())
      .def(pybind11::init<int64_t, std::vector<at::Tensor>, std::vector<at::Tensor>, std::vector<at::Tensor>,
                          std::vector<at::Tensor>, std::vector<at::Tensor>, std::vector<bool>, int64_t>())
      .def("forward", &Int8Chain::forward);
}
