// Device helpers for reading a BCQ weight.
#pragma once
#include "../bcq_format.h"

namespace torch_lowbit {
namespace cuda {

__device__ __forceinline__ float bcq_weight_at(const BcqWeight& w, int64_t n, int64_t k) {
  const int64_t g = k / w.group_size;
  float v = w.offset_at(g, n);
  for (int64_t b = 0; b < w.bits; ++b) {
    const uint8_t byte = w.byte_at(b, n, k >> 3);
    const float a = w.alpha_at(b, g, n);
    v += ((byte >> (k & 7)) & 1) ? a : -a;
  }
  return v;
}

inline unsigned int blocks_for(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

}  // namespace cuda
}  // namespace torch_lowbit
