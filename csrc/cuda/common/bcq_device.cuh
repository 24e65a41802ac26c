// Device helpers: reading a BCQ weight and activations of any storage type.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/common/launchers.h"

namespace torch_lowbit {
namespace cuda {

__device__ __forceinline__ float scale_load(const void* base, int64_t idx, bool half) {
  return half ? __half2float(static_cast<const __half*>(base)[idx])
              : static_cast<const float*>(base)[idx];
}

__device__ __forceinline__ float alpha_load(const BcqWeight& w, int64_t b, int64_t g, int64_t n) {
  return scale_load(w.alpha, (b * w.ngroups() + g) * w.N + n, w.half);
}

__device__ __forceinline__ float offset_load(const BcqWeight& w, int64_t g, int64_t n) {
  return scale_load(w.offset, g * w.N + n, w.half);
}

__device__ __forceinline__ float bcq_weight_at(const BcqWeight& w, int64_t n, int64_t k) {
  const int64_t g = k / w.group_size;
  float v = offset_load(w, g, n);
  for (int64_t b = 0; b < w.bits; ++b) {
    const uint8_t byte = w.byte_at(b, n, k >> 3);
    const float a = alpha_load(w, b, g, n);
    v += ((byte >> (k & 7)) & 1) ? a : -a;
  }
  return v;
}

__device__ __forceinline__ float act_load(const void* p, int64_t i, ActType t) {
  switch (t) {
    case ActType::kFloat16: return __half2float(static_cast<const __half*>(p)[i]);
    case ActType::kBFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    default: return static_cast<const float*>(p)[i];
  }
}

__device__ __forceinline__ void act_store(void* p, int64_t i, float v, ActType t) {
  switch (t) {
    case ActType::kFloat16: static_cast<__half*>(p)[i] = __float2half_rn(v); break;
    case ActType::kBFloat16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); break;
    default: static_cast<float*>(p)[i] = v;
  }
}

inline unsigned int blocks_for(int64_t n, int threads) {
  return static_cast<unsigned int>((n + threads - 1) / threads);
}

}  // namespace cuda
}  // namespace torch_lowbit
