// The BCQ weight as the kernels see it: raw pointers, no torch headers, so that the
// SIMD kernel files (compiled with their own target flags) and the .cu files can include it.
//
//   W[n, k] = sum_{b < bits} alpha[b, g, n] * s_b[n, k] + offset[g, n],   g = k / group_size
//   s_b[n, k] = +1 if bit (k % 8) of planes[b, n, k / 8] is set, else -1
//
// See docs/FORMAT.md for the storage layout this mirrors.
#pragma once
#include <cstdint>

#ifndef TORCH_LOWBIT_HD
#ifdef __CUDACC__
#define TORCH_LOWBIT_HD __host__ __device__
#else
#define TORCH_LOWBIT_HD
#endif
#endif

namespace torch_lowbit {

struct BcqWeight {
  const uint8_t* planes;  // [bits, N, Kp / 8]
  const float* alpha;     // [bits, ngroups, N]
  const float* offset;    // [ngroups, N]
  int64_t bits;
  int64_t N;
  int64_t K;           // logical in_features (unpadded)
  int64_t Kp;          // padded: ngroups * group_size, a multiple of 32
  int64_t group_size;  // effective group size (per-channel resolved to Kp)

  TORCH_LOWBIT_HD int64_t ngroups() const { return Kp / group_size; }
  TORCH_LOWBIT_HD int64_t row_bytes() const { return Kp / 8; }
};

}  // namespace torch_lowbit
