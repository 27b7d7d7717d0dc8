// Direct sparse convolution for sparsity_viz's backend (NCHW in, NCHW out).
//
// A Conv2d (stride 1, dilation 1, groups 1, no padding: the caller pads) is stored as the
// list of its nonzero filter taps per output channel: (input channel, ky * KW + kx, value).
// For one image n and output channel o the output plane is accumulated on the input's
// width grid ("wide" plane): position p = y * W + x, so tap (c, ky, kx) adds
//     w * X[n, c][p + ky * W + kx]      for every p in [0, P),  P = (Ho - 1) * W + Wo,
// a contiguous run of inputs: vectors of the target's widest width (16 floats on AVX-512, vec.h), one load
// and one FMA per tap and vector, up to 8 vectors (128 positions on AVX-512) of accumulators in registers
// (64-byte vectors built for AVX2 had no register and lived on the stack). The columns x >= Wo of the
// wide plane are computed and dropped (W / Wo extra work: 1.17x for 28 -> 24, 1.5x for 12 -> 8).
// The epilogue fuses the bias, ReLU and a 2x2 max pool (stride 2, floor), using
// pool(relu(z + b)) == relu(pool(z) + b) (max commutes with monotone maps), so the
// unpooled plane never leaves the thread's buffer. With threads > 1 the work is split over
// (image, channel) pairs with at::parallel_for (torch's intra-op pool, built with -fopenmp);
// threads == 1 runs on the calling thread (the caller picks by measured call times).
#include "torch_lite.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vec.h"

namespace {

constexpr int LANES = sizeof(vn) / sizeof(float);  // this target's widest vector (vec.h): 16, 8 or 4 floats

// NV vectors of the wide plane starting at position p0: acc[j] = sum_t w[t] * x[off[t] + p0 + LANES j].
template <int NV>
inline void block(const float* x, const int32_t* off, const float* w, int64_t nt, float* acc_out, int64_t p0) {
  vn acc[NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) acc[j] = vn{};
  const float* xp = x + p0;
  for (int64_t t = 0; t < nt; ++t) {
    const float v = w[t];
    const float* s = xp + off[t];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[j] += v * load_v<vn>(s + j * LANES);
  }
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) store_v<vn>(acc_out + p0 + j * LANES, acc[j]);
}

// The whole wide plane [0, P): blocks of 8 vectors, one block of the remaining whole vectors,
// then one vector ending exactly at P (overlapping the one before; needs P >= LANES, else scalar).
void plane(const float* x, const int32_t* off, const float* w, int64_t nt, float* acc, int64_t P) {
  if (P < LANES) {
    for (int64_t p = 0; p < P; ++p) {
      float s = 0.0f;
      for (int64_t t = 0; t < nt; ++t) s += w[t] * x[off[t] + p];
      acc[p] = s;
    }
    return;
  }
  int64_t p = 0;
  for (; p + 8 * LANES <= P; p += 8 * LANES) block<8>(x, off, w, nt, acc, p);
  switch ((P - p) / LANES) {
    case 1: block<1>(x, off, w, nt, acc, p); break;
    case 2: block<2>(x, off, w, nt, acc, p); break;
    case 3: block<3>(x, off, w, nt, acc, p); break;
    case 4: block<4>(x, off, w, nt, acc, p); break;
    case 5: block<5>(x, off, w, nt, acc, p); break;
    case 6: block<6>(x, off, w, nt, acc, p); break;
    case 7: block<7>(x, off, w, nt, acc, p); break;
    default: break;
  }
  if ((P - p) % LANES) block<1>(x, off, w, nt, acc, P - LANES);
}

}  // namespace

// max that keeps a NaN from either side, as torch's max_pool2d does (std::max drops a NaN in its second argument).
// Used only for an input with a non-finite value: in every pool it made the whole unit ~1.5x slower (measured with
// sparse_conv.py on LeNet-5), and finite inputs and weights give finite sums.
inline float nan_max(float a, float b) { return (a > b || a != a) ? a : b; }

// Whether every value is finite: an exponent of all ones is NaN or infinity (integer lanes, so it vectorizes; a
// torch isfinite().all() on conv2's input cost ~1 ms, 15 % of the layer).
inline bool all_finite(const float* p, int64_t n) {
  uint32_t bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t u;
    std::memcpy(&u, p + i, sizeof u);
    bad |= static_cast<uint32_t>((u & 0x7f800000u) == 0x7f800000u);
  }
  return bad == 0;
}

template <bool NAN_SAFE>
inline float max4(float a, float b, float c, float d) {
  if (NAN_SAFE) return nan_max(nan_max(a, b), nan_max(c, d));
  return std::max(std::max(a, b), std::max(c, d));
}

// x (N, C, H, W) float32 contiguous; tap_ptr (OC + 1,) int32; tap_chan, tap_k (nnz,) int32
// (input channel, ky * KW + kx); tap_val (nnz,) float32; bias (OC,) or empty.
// pool: 1 (none) or 2 (2x2 max pool, stride 2, floor); threads: 1 (serial) or more (torch's pool).
// Returns (N, OC, Ho', Wo').
at::Tensor conv_forward(at::Tensor x, at::Tensor tap_ptr, at::Tensor tap_chan, at::Tensor tap_k,
                           at::Tensor tap_val, at::Tensor bias, int64_t KH, int64_t KW, bool relu,
                           int64_t pool, int64_t threads) {
  TORCH_CHECK(x.dim() == 4 && x.scalar_type() == at::kFloat && x.device().is_cpu(),
              "conv_forward: x must be a float32 CPU tensor (N, C, H, W)");
  TORCH_CHECK(tap_ptr.scalar_type() == at::kInt && tap_chan.scalar_type() == at::kInt &&
                  tap_k.scalar_type() == at::kInt && tap_val.scalar_type() == at::kFloat,
              "conv_forward: taps must be int32 (ptr, chan, k) and float32 (val)");
  TORCH_CHECK(pool == 1 || pool == 2, "conv_forward: pool must be 1 or 2");
  x = x.contiguous();
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  const int64_t OC = tap_ptr.numel() - 1;
  TORCH_CHECK(OC >= 0 && KH >= 1 && KW >= 1 && H >= KH && W >= KW, "conv_forward: input ", H, "x", W,
              " smaller than the kernel ", KH, "x", KW);
  TORCH_CHECK(bias.numel() == 0 || bias.numel() == OC, "conv_forward: bias must have ", OC, " entries");
  TORCH_CHECK(C * H * W < (int64_t(1) << 31), "conv_forward: an image of ", C * H * W, " floats is too large");
  const int64_t nnz = tap_val.numel();
  TORCH_CHECK(tap_chan.numel() == nnz && tap_k.numel() == nnz, "conv_forward: tap arrays differ in length");
  const int64_t Ho = H - KH + 1, Wo = W - KW + 1, P = (Ho - 1) * W + Wo;
  const int64_t Hq = pool == 2 ? Ho / 2 : Ho, Wq = pool == 2 ? Wo / 2 : Wo;
  const int32_t* ptr = tap_ptr.data_ptr<int32_t>();
  const int32_t* chan = tap_chan.data_ptr<int32_t>();
  const int32_t* kk = tap_k.data_ptr<int32_t>();
  TORCH_CHECK(ptr[0] == 0 && ptr[OC] == nnz, "conv_forward: tap_ptr must run from 0 to nnz");
  std::vector<int32_t> off(static_cast<size_t>(nnz));  // tap -> offset into one image (C * H * W floats)
  for (int64_t t = 0; t < nnz; ++t) {
    TORCH_CHECK(chan[t] >= 0 && chan[t] < C && kk[t] >= 0 && kk[t] < KH * KW, "conv_forward: tap ", t,
                " out of range");
    off[t] = static_cast<int32_t>(chan[t] * H * W + (kk[t] / KW) * W + kk[t] % KW);
  }
  auto y = at::empty({N, OC, Hq, Wq}, x.options());
  const float* X = x.data_ptr<float>();
  const bool finite = pool != 2 || all_finite(X, N * C * H * W);  // the pool's NaN-safe max only when needed
  const float* val = tap_val.data_ptr<float>();
  const float* b = bias.numel() ? bias.data_ptr<float>() : nullptr;
  float* Y = y.data_ptr<float>();
  const int32_t* O = off.data();
  auto body = [&](int64_t begin, int64_t end) {
    std::vector<float> acc(static_cast<size_t>(P));
    for (int64_t i = begin; i < end; ++i) {
      const int64_t n = i / OC, o = i % OC;
      const float* xn = X + n * C * H * W;
      const int64_t t0 = ptr[o], nt = ptr[o + 1] - t0;
      plane(xn, O + t0, val + t0, nt, acc.data(), P);
      const float bo = b ? b[o] : 0.0f;
      float* yo = Y + i * Hq * Wq;
      if (pool == 2) {
        for (int64_t py = 0; py < Hq; ++py) {
          const float* r0 = acc.data() + 2 * py * W;
          const float* r1 = r0 + W;
          float* out = yo + py * Wq;
          if (finite) {
            for (int64_t px = 0; px < Wq; ++px) {
              const float m = max4<false>(r0[2 * px], r0[2 * px + 1], r1[2 * px], r1[2 * px + 1]) + bo;
              out[px] = relu ? std::max(m, 0.0f) : m;
            }
          } else {
            for (int64_t px = 0; px < Wq; ++px) {
              const float m = max4<true>(r0[2 * px], r0[2 * px + 1], r1[2 * px], r1[2 * px + 1]) + bo;
              out[px] = relu ? std::max(m, 0.0f) : m;
            }
          }
        }
      } else {
        for (int64_t yy = 0; yy < Ho; ++yy) {
          const float* r = acc.data() + yy * W;
          float* out = yo + yy * Wo;
          for (int64_t xx = 0; xx < Wo; ++xx) {
            const float m = r[xx] + bo;
            out[xx] = relu ? std::max(m, 0.0f) : m;
          }
        }
      }
    }
  };
  if (threads <= 1)
    body(0, N * OC);
  else
    at::parallel_for(0, N * OC, 1, body);
  return y;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("conv_forward", &conv_forward, "direct sparse conv (NCHW) over nonzero taps, bias + ReLU + 2x2 max pool fused");
}
