// 64-byte aligned views into std::vectors, shared by the native extensions. Header only; the build copies it beside
// each source and hashes it into the build key (kernels.build_key). A vector's data is only 16-byte aligned, and a
// 16-lane row that straddles two cache lines costs two: the int8 chain's activations read 1.5x slower that way.
#pragma once
#include <cstdint>
#include <vector>

namespace {

// The first 64-byte boundary in v after growing it (never shrinking) to hold n elements from there; new elements
// are zero.
template <typename T>
inline T* aligned64(std::vector<T>& v, int64_t n) {
  const size_t need = static_cast<size_t>(n) + 64 / sizeof(T);
  if (v.size() < need) v.resize(need);
  const uintptr_t a = reinterpret_cast<uintptr_t>(v.data());
  return v.data() + ((64 - a % 64) % 64) / sizeof(T);
}

}  // namespace
