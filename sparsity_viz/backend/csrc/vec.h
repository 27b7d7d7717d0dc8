// GCC/Clang vector types shared by the native extensions (sparse_kernels.cpp, int8_kernels.cpp), and the widest
// one this target has. Header only; the build copies it beside each source and hashes it into the build key.
#pragma once
#include <cstring>
#include <type_traits>

namespace {

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

// The widest vector register: a wider vector type has no register to live in, and GCC keeps arrays of it on the
// stack (a 64-byte accumulator built for AVX2 went to memory and back on every FMA: 8-27x slower than AVX-512).
#if defined(__AVX512F__)
typedef v16 vn;
#elif defined(__AVX__)
typedef v8 vn;
#else
typedef v4 vn;
#endif

// A tile of W samples (4 to 128) as this target's vectors: passes of NV vectors of type V (LANES floats each), at
// most 8 accumulators a pass, which 16 registers (AVX2, SSE) hold beside a load and a broadcast. On AVX-512 every
// tile is one pass, as it was before this existed.
template <int W>
struct Tile {
  using V = std::conditional_t<(W * sizeof(float) >= sizeof(vn)), vn, std::conditional_t<W == 8, v8, v4>>;
  static constexpr int LANES = sizeof(V) / sizeof(float);
  static constexpr int NV = W / LANES < 8 ? W / LANES : 8;
  static constexpr int PASSES = W / LANES / NV;
  static_assert(NV * LANES * PASSES == W, "a tile is whole vectors");
};

}  // namespace
