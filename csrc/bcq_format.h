// The BCQ weight as the kernels see it: raw pointers, no torch headers, so that the
// SIMD kernel files (compiled with their own target flags) and the .cu files can include it.
//
//   W[n, k] = sum_{b < bits} alpha[b, g, n] * s_b[n, k] + offset[g, n],   g = k / group_size
//   s_b[n, k] = +1 if bit (k % 8) of byte(b, n, k / 8) is set, else -1
//
// Planes are panel-major: rows come in panels of kPanelRows, and for each plane, panel and
// byte column c the panel's bytes sit side by side:
//   byte(b, n, c) = planes[((b * panels + n / 16) * Kp / 8 + c) * 16 + n % 16]
// so a 16-byte load gives one byte column of 16 rows (one SIMD register of rows), and GPU
// threads over n read consecutive bytes.
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

constexpr int64_t kPanelRows = 16;

struct BcqWeight {
  const uint8_t* planes;  // [bits, ceil(N / 16), Kp / 8, 16]
  const float* alpha;     // [bits, ngroups, N]
  const float* offset;    // [ngroups, N]
  int64_t bits;
  int64_t N;
  int64_t K;           // logical in_features (unpadded)
  int64_t Kp;          // padded: ngroups * group_size, a multiple of 32
  int64_t group_size;  // effective group size (per-channel resolved to Kp)

  TORCH_LOWBIT_HD int64_t ngroups() const { return Kp / group_size; }
  TORCH_LOWBIT_HD int64_t row_bytes() const { return Kp / 8; }
  TORCH_LOWBIT_HD int64_t panels() const { return (N + kPanelRows - 1) / kPanelRows; }
  // Offset of the 16-byte run holding byte column c of panel p in plane b.
  TORCH_LOWBIT_HD int64_t panel_offset(int64_t b, int64_t p, int64_t c) const {
    return ((b * panels() + p) * row_bytes() + c) * kPanelRows;
  }
  TORCH_LOWBIT_HD uint8_t byte_at(int64_t b, int64_t n, int64_t c) const {
    return planes[panel_offset(b, n / kPanelRows, c) + n % kPanelRows];
  }
};

}  // namespace torch_lowbit
