// Activation-sparse kernels for sparsity_viz: y = W x + b (optionally ReLU) that skip the
// zero entries of x (a separate extension from sparse_kernels.cpp, built by kernels.Extension).
//
// Two weight encodings, both indexed by INPUT feature (the transpose of the usual layout):
//   dense W^T  (in, ldw) row-major, ldw = out rounded up to 16 floats (zero padded): each
//              nonzero input x_i adds the contiguous row x_i * W^T[i, :] to y (an axpy);
//   CSC of W   (= CSR of W^T): colptr (in + 1) int32, row indices int16 / int32, values:
//              each nonzero input walks only the nonzero weights of its column (sparse x sparse).
// Small batches, two modes:
//   per sample  every sample has its own list of nonzero inputs; y_b is accumulated in a
//               contiguous buffer (dense: register blocks of up to 16 zmm of outputs, 8 ymm or xmm
//               without AVX-512, U accumulator sets over consecutive inputs so >= 8 FMA chains are in flight;
//               CSC: scalar scatter-add, 4 loads before 4 stores since the rows of one column
//               are distinct; an AVX-512 gather/FMA/scatter version was measured no faster here);
//   union       the inputs nonzero in ANY sample; each is a 16-lane vector of its B <= 16
//               samples and updates R <= 16 output rows (4 with AVX2, 2 with SSE) held in registers (dense)
//               or the (out, 16) buffer rows of its nonzero weights (CSC).
// Activations: element (i, b) of X at X[i * sf + b * sb], so feature-major (in, B) and
// batch-major (B, in) inputs are read in place. A chain keeps per-sample layers batch-major
// between layers and returns feature-major (out, B). Serial: one thread, no thread pool.
#include "torch_lite.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "align.h"
#include "vec.h"

namespace {

constexpr int64_t LANES = 16;  // the layouts' group of floats: W^T rows padded to it, 16 samples in union mode
// held as this target's widest vectors (vec.h): a 64-byte vector type has no register without AVX-512, and GCC kept
// such accumulators on the stack
constexpr int VL = sizeof(vn) / sizeof(float);  // floats per vector: 16, 8 or 4
constexpr int PER16 = LANES / VL;                // vectors per 16-float group
constexpr int MAX16 = VL == 16 ? 16 : 8 / PER16;  // 16-float groups of accumulators at once: 16 zmm, else 8 vectors

struct ALayer {
  int64_t in = 0, out = 0, ldw = 0;  // ldw: padded row length of dense W^T
  bool csc = false, relu = false, idx16 = false;
  int64_t mode = 0;                  // 0: per sample, 1: union of active inputs (B > 1)
  const float* w = nullptr;          // dense: W^T (in, ldw); CSC: values (nnz,)
  const int32_t* colptr = nullptr;   // CSC: (in + 1,)
  const void* row = nullptr;         // CSC: (nnz,) output indices, int16 or int32
  const float* bias = nullptr;       // (out,) or nullptr
};

struct View {  // element (i, b) at p[i * sf + b * sb]
  float* p;
  int64_t sf, sb;
};

// Scratch buffers, reused across calls (the project runs one thread; thread_local keeps it safe anyway).
thread_local std::vector<int32_t> t_idx;
thread_local std::vector<float> t_val, t_y;

// ---- per sample, dense W^T: NV vectors of outputs starting at wt (already offset), y holds the start values.
template <int NV16>
void dense_chunk(const float* wt, int64_t ldw, const int32_t* idx, const float* val, int64_t n, float* y) {
  constexpr int NV = NV16 * PER16;  // NV16 16-float groups as NV vectors
  constexpr int U = NV >= 8 ? 1 : (NV >= 4 ? 2 : (NV >= 2 ? 4 : 8));
  vn acc[U][NV];
#pragma GCC unroll 16
  for (int k = 0; k < NV; ++k) acc[0][k] = load_v<vn>(y + k * VL);
#pragma GCC unroll 8
  for (int u = 1; u < U; ++u)
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) acc[u][k] = vn{};
  int64_t q = 0;
  for (; q + U <= n; q += U) {
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      const float* w = wt + static_cast<int64_t>(idx[q + u]) * ldw;
      const float v = val[q + u];
#pragma GCC unroll 16
      for (int k = 0; k < NV; ++k) acc[u][k] += v * load_v<vn>(w + k * VL);
    }
  }
  for (; q < n; ++q) {
    const float* w = wt + static_cast<int64_t>(idx[q]) * ldw;
    const float v = val[q];
#pragma GCC unroll 16
    for (int k = 0; k < NV; ++k) acc[0][k] += v * load_v<vn>(w + k * VL);
  }
#pragma GCC unroll 16
  for (int k = 0; k < NV; ++k) {
    vn a = acc[0][k];
#pragma GCC unroll 8
    for (int u = 1; u < U; ++u) a += acc[u][k];
    store_v<vn>(y + k * VL, a);
  }
}

typedef void (*DenseChunk)(const float*, int64_t, const int32_t*, const float*, int64_t, float*);
const DenseChunk DENSE_CHUNKS[17] = {nullptr,          dense_chunk<1>,  dense_chunk<2>,  dense_chunk<3>,
                                     dense_chunk<4>,   dense_chunk<5>,  dense_chunk<6>,  dense_chunk<7>,
                                     dense_chunk<8>,   dense_chunk<9>,  dense_chunk<10>, dense_chunk<11>,
                                     dense_chunk<12>,  dense_chunk<13>, dense_chunk<14>, dense_chunk<15>,
                                     dense_chunk<16>};

void dense_sample(const ALayer& L, const int32_t* idx, const float* val, int64_t n, float* y) {
  const int64_t nv = L.ldw / LANES;
  if (nv == 0) return;
  const int64_t chunks = (nv + MAX16 - 1) / MAX16, base = nv / chunks, rem = nv % chunks;  // even, <= MAX16 each
  int64_t v0 = 0;
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t len = base + (c < rem ? 1 : 0);
    DENSE_CHUNKS[len](L.w + v0 * LANES, L.ldw, idx, val, n, y + v0 * LANES);
    v0 += len;
  }
}

// ---- per sample, CSC: scatter-add the nonzero weights of every active column.
template <typename IT>
void csc_sample(const ALayer& L, const int32_t* idx, const float* val, int64_t n, float* y) {
  const IT* rows = static_cast<const IT*>(L.row);
  const float* w = L.w;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t i = idx[q];
    const float v = val[q];
    int64_t p = L.colptr[i];
    const int64_t p1 = L.colptr[i + 1];
    for (; p + 4 <= p1; p += 4) {  // the rows of one column are distinct: load all four first
      const int64_t r0 = rows[p], r1 = rows[p + 1], r2 = rows[p + 2], r3 = rows[p + 3];
      const float a0 = y[r0] + w[p] * v, a1 = y[r1] + w[p + 1] * v;
      const float a2 = y[r2] + w[p + 2] * v, a3 = y[r3] + w[p + 3] * v;
      y[r0] = a0;
      y[r1] = a1;
      y[r2] = a2;
      y[r3] = a3;
    }
    for (; p < p1; ++p) y[rows[p]] += w[p] * v;
  }
}

// ---- union, dense W^T: R output rows (each 16 samples, PER16 vectors) in registers, over all active inputs.
template <int R>
void dense_union_block(const float* wt, int64_t ldw, const int32_t* idx, const float* xp, int64_t n,
                       const float* bias, float* yl) {
  vn acc[R][PER16];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int j = 0; j < PER16; ++j) acc[k][j] = vn{} + (bias ? bias[k] : 0.0f);
  for (int64_t q = 0; q < n; ++q) {
    const float* w = wt + static_cast<int64_t>(idx[q]) * ldw;
    vn xv[PER16];
#pragma GCC unroll 4
    for (int j = 0; j < PER16; ++j) xv[j] = load_v<vn>(xp + q * LANES + j * VL);
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
      for (int j = 0; j < PER16; ++j) acc[k][j] += w[k] * xv[j];
  }
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int j = 0; j < PER16; ++j) store_v<vn>(yl + k * LANES + j * VL, acc[k][j]);
}

typedef void (*UnionBlock)(const float*, int64_t, const int32_t*, const float*, int64_t, const float*, float*);
const UnionBlock UNION_BLOCKS[17] = {nullptr,
                                     dense_union_block<1>,  dense_union_block<2>,  dense_union_block<3>,
                                     dense_union_block<4>,  dense_union_block<5>,  dense_union_block<6>,
                                     dense_union_block<7>,  dense_union_block<8>,  dense_union_block<9>,
                                     dense_union_block<10>, dense_union_block<11>, dense_union_block<12>,
                                     dense_union_block<13>, dense_union_block<14>, dense_union_block<15>,
                                     dense_union_block<16>};

template <typename IT>
void csc_union(const ALayer& L, const int32_t* idx, const float* xp, int64_t n, float* yl) {
  const IT* rows = static_cast<const IT*>(L.row);
  for (int64_t q = 0; q < n; ++q) {
    const int64_t i = idx[q];
    vn xv[PER16];
#pragma GCC unroll 4
    for (int j = 0; j < PER16; ++j) xv[j] = load_v<vn>(xp + q * LANES + j * VL);
    for (int64_t p = L.colptr[i]; p < L.colptr[i + 1]; ++p) {
      float* yr = yl + static_cast<int64_t>(rows[p]) * LANES;
#pragma GCC unroll 4
      for (int j = 0; j < PER16; ++j) store_v<vn>(yr + j * VL, load_v<vn>(yr + j * VL) + L.w[p] * xv[j]);
    }
  }
}

inline float relu_if(float a, bool relu) { return relu && a < 0.0f ? 0.0f : a; }  // NaN stays NaN, as in torch.relu

void run_per_sample(const ALayer& L, const View& x, int64_t B, const View& y) {
  t_idx.resize(static_cast<size_t>(L.in));
  t_val.resize(static_cast<size_t>(L.in));
  const int64_t ylen = L.csc ? L.out : L.ldw;
  t_y.resize(static_cast<size_t>(std::max<int64_t>(ylen, 1)));
  int32_t* idx = t_idx.data();
  float* val = t_val.data();
  float* yb = t_y.data();
  for (int64_t b = 0; b < B; ++b) {
    const float* xb = x.p + b * x.sb;
    int64_t n = 0;
    for (int64_t i = 0; i < L.in; ++i) {  // branch-free compaction of the nonzero inputs
      const float v = xb[i * x.sf];
      idx[n] = static_cast<int32_t>(i);
      val[n] = v;
      n += v != 0.0f;
    }
    if (L.bias) std::memcpy(yb, L.bias, sizeof(float) * L.out);
    else std::fill(yb, yb + L.out, 0.0f);
    if (ylen > L.out) std::fill(yb + L.out, yb + ylen, 0.0f);
    if (!L.csc) dense_sample(L, idx, val, n, yb);
    else if (L.idx16) csc_sample<int16_t>(L, idx, val, n, yb);
    else csc_sample<int32_t>(L, idx, val, n, yb);
    float* out = y.p + b * y.sb;
    for (int64_t o = 0; o < L.out; ++o) out[o * y.sf] = relu_if(yb[o], L.relu);
  }
}

void run_union(const ALayer& L, const View& x, int64_t B, const View& y) {
  t_idx.resize(static_cast<size_t>(L.in));
  const int64_t yrows = L.csc ? L.out : L.ldw;
  int32_t* idx = t_idx.data();
  float* xp = aligned64(t_val, L.in * LANES);  // (in, 16) rows of 64 bytes
  float* yl = aligned64(t_y, std::max<int64_t>(yrows, 1) * LANES);
  int64_t n = 0;
  for (int64_t i = 0; i < L.in; ++i) {  // pack the inputs nonzero in any sample, 16 lanes each
    float* dst = xp + n * LANES;
    bool any = false;
    for (int64_t b = 0; b < LANES; ++b) {
      const float v = b < B ? x.p[i * x.sf + b * x.sb] : 0.0f;
      dst[b] = v;
      any |= v != 0.0f;
    }
    idx[n] = static_cast<int32_t>(i);
    n += any;
  }
  if (!L.csc) {
    for (int64_t o0 = 0; o0 < L.out; o0 += MAX16) {
      const int64_t R = std::min<int64_t>(MAX16, L.out - o0);
      UNION_BLOCKS[R](L.w + o0, L.ldw, idx, xp, n, L.bias ? L.bias + o0 : nullptr, yl + o0 * LANES);
    }
  } else {
    for (int64_t o = 0; o < L.out; ++o)
      for (int j = 0; j < PER16; ++j) store_v<vn>(yl + o * LANES + j * VL, vn{} + (L.bias ? L.bias[o] : 0.0f));
    if (L.idx16) csc_union<int16_t>(L, idx, xp, n, yl);
    else csc_union<int32_t>(L, idx, xp, n, yl);
  }
  for (int64_t o = 0; o < L.out; ++o)
    for (int64_t b = 0; b < B; ++b) y.p[o * y.sf + b * y.sb] = relu_if(yl[o * LANES + b], L.relu);
}

struct Spec {
  std::vector<ALayer> layers;
  std::vector<at::Tensor> keep;  // every tensor the raw pointers point into
  int64_t in0 = 0;
};

Spec make_spec(int64_t in0, const std::vector<at::Tensor>& colptrs, const std::vector<at::Tensor>& rows,
               const std::vector<at::Tensor>& vals, const std::vector<at::Tensor>& biases,
               const std::vector<bool>& relus, const std::vector<int64_t>& outs, const std::vector<int64_t>& modes) {
  const size_t n = vals.size();
  TORCH_CHECK(colptrs.size() == n && rows.size() == n && biases.size() == n && relus.size() == n && outs.size() == n &&
                  modes.size() == n,
              "ActChain: per-layer lists must have equal lengths");
  Spec s;
  s.in0 = in0;
  int64_t cur = in0;
  for (size_t k = 0; k < n; ++k) {
    ALayer L;
    L.in = cur;
    L.out = outs[k];
    L.relu = relus[k];
    L.mode = modes[k];
    TORCH_CHECK(L.out >= 0 && (L.mode == 0 || L.mode == 1), "ActChain: bad out size or mode");
    TORCH_CHECK(vals[k].scalar_type() == at::kFloat && vals[k].is_contiguous() && vals[k].device().is_cpu(),
                "ActChain: values must be contiguous float32 CPU tensors");
    L.csc = colptrs[k].numel() > 0;
    if (L.csc) {
      TORCH_CHECK(colptrs[k].scalar_type() == at::kInt && colptrs[k].is_contiguous() && colptrs[k].numel() == L.in + 1,
                  "ActChain: colptr must be contiguous int32 of in + 1 = ", L.in + 1, " entries");
      TORCH_CHECK(rows[k].is_contiguous() && (rows[k].scalar_type() == at::kShort || rows[k].scalar_type() == at::kInt) &&
                      rows[k].numel() == vals[k].numel(),
                  "ActChain: row indices must be contiguous int16/int32 of length nnz");
      const int32_t* cp = colptrs[k].data_ptr<int32_t>();
      TORCH_CHECK(cp[0] == 0 && cp[L.in] == vals[k].numel(), "ActChain: colptr must run from 0 to nnz");
      for (int64_t i = 0; i < L.in; ++i) TORCH_CHECK(cp[i] <= cp[i + 1], "ActChain: colptr must not decrease");
      L.idx16 = rows[k].scalar_type() == at::kShort;
      for (int64_t p = 0; p < rows[k].numel(); ++p) {
        const int64_t r = L.idx16 ? rows[k].data_ptr<int16_t>()[p] : rows[k].data_ptr<int32_t>()[p];
        TORCH_CHECK(r >= 0 && r < L.out, "ActChain: row index out of range");
      }
      L.colptr = cp;
      L.row = rows[k].data_ptr();
    } else {
      TORCH_CHECK(vals[k].dim() == 2 && vals[k].size(0) == L.in && vals[k].size(1) % LANES == 0 &&
                      vals[k].size(1) >= L.out && vals[k].size(1) < L.out + LANES,
                  "ActChain: dense W^T must be (in, out rounded up to 16), got ", vals[k].sizes());
      L.ldw = vals[k].size(1);
    }
    L.w = vals[k].data_ptr<float>();
    if (biases[k].numel() > 0) {
      TORCH_CHECK(biases[k].scalar_type() == at::kFloat && biases[k].is_contiguous() && biases[k].numel() == L.out,
                  "ActChain: bias must be contiguous float32 of length out");
      L.bias = biases[k].data_ptr<float>();
    }
    s.keep.insert(s.keep.end(), {colptrs[k], rows[k], vals[k], biases[k]});
    s.layers.push_back(L);
    cur = L.out;
  }
  return s;
}

at::Tensor run_spec(const Spec& s, at::Tensor X, bool batch_major) {
  TORCH_CHECK(X.dim() == 2 && X.scalar_type() == at::kFloat && X.device().is_cpu(), "X must be a 2-D float32 CPU tensor");
  X = X.contiguous();
  const int64_t B = batch_major ? X.size(0) : X.size(1);
  const int64_t F = batch_major ? X.size(1) : X.size(0);
  TORCH_CHECK(F == s.in0, "ActChain expects ", s.in0, " input features, got ", F);
  View v = batch_major ? View{X.data_ptr<float>(), 1, F} : View{X.data_ptr<float>(), B, 1};
  at::Tensor cur = X;
  for (size_t k = 0; k < s.layers.size(); ++k) {
    const ALayer& L = s.layers[k];
    const bool last = k + 1 == s.layers.size();
    const bool union_mode = L.mode == 1 && B > 1 && B <= LANES;
    const bool out_bm = !last && !union_mode && B > 1;  // per-sample layers hand on batch-major rows
    at::Tensor Y = out_bm ? at::empty({B, L.out}, X.options()) : at::empty({L.out, B}, X.options());
    View o = out_bm ? View{Y.data_ptr<float>(), 1, L.out} : View{Y.data_ptr<float>(), B, 1};
    if (B > 0 && L.out > 0) {
      if (union_mode) run_union(L, v, B, o);
      else run_per_sample(L, v, B, o);
    }
    cur = Y;
    v = o;
  }
  if (s.layers.empty()) return batch_major ? X.t().contiguous() : X;
  return cur;  // the last layer writes feature-major (out_last, B)
}

}  // namespace

// A validated chain of activation-sparse layers; `forward` costs one small Python call.
// Layer k is CSC when colptrs[k] is non-empty (rows[k] int16/int32, vals[k] the values),
// else dense with vals[k] = W^T (in, out rounded up to 16). modes[k]: 0 per sample, 1 union.
struct ActChain {
  Spec spec;
  ActChain(int64_t in, std::vector<at::Tensor> colptrs, std::vector<at::Tensor> rows,
           std::vector<at::Tensor> vals, std::vector<at::Tensor> biases, std::vector<bool> relus,
           std::vector<int64_t> outs, std::vector<int64_t> modes)
      : spec(make_spec(in, colptrs, rows, vals, biases, relus, outs, modes)) {}
  at::Tensor forward(at::Tensor X, bool batch_major) const { return run_spec(spec, X, batch_major); }
};

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  pybind11::class_<ActChain>(m, "ActChain", pybind11::module_local())
      .def(pybind11::init<int64_t, std::vector<at::Tensor>, std::vector<at::Tensor>, std::vector<at::Tensor>,
                          std::vector<at::Tensor>, std::vector<bool>, std::vector<int64_t>, std::vector<int64_t>>())
      .def("forward", &ActChain::forward, "X (in, B) feature-major, or (B, in) when batch_major -> (out, B)");
}
