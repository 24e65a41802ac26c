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
#include <cstring>

#include "host_device.h"

namespace torch_lowbit {

constexpr int64_t kPanelRows = 16;

// IEEE half -> float in plain C++ (host and device), for the scalar paths; SIMD paths convert
// 16 at a time with vcvtph2ps.
TORCH_LOWBIT_HD inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      exp = 113;
      while (!(mant & 0x400u)) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof(f));
  return f;
}

struct BcqWeight {
  const uint8_t* planes;  // [bits, ceil(N / 16), Kp / 8, 16]
  const void* alpha;      // [bits, ngroups, N], fp16 or fp32 as stored (`half` says which)
  const void* offset;     // [ngroups, N], same dtype
  bool half;
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
  TORCH_LOWBIT_HD const void* scale_ptr(const void* base, int64_t idx) const {
    return half ? static_cast<const void*>(static_cast<const uint16_t*>(base) + idx)
                : static_cast<const void*>(static_cast<const float*>(base) + idx);
  }
  TORCH_LOWBIT_HD float scale_at(const void* base, int64_t idx) const {
    return half ? half_to_float(static_cast<const uint16_t*>(base)[idx])
                : static_cast<const float*>(base)[idx];
  }
  // Pointers to the scales of rows n.. (contiguous in n) and single values.
  TORCH_LOWBIT_HD const void* alpha_ptr(int64_t b, int64_t g, int64_t n) const {
    return scale_ptr(alpha, (b * ngroups() + g) * N + n);
  }
  TORCH_LOWBIT_HD const void* offset_ptr(int64_t g, int64_t n) const { return scale_ptr(offset, g * N + n); }
  TORCH_LOWBIT_HD float alpha_at(int64_t b, int64_t g, int64_t n) const {
    return scale_at(alpha, (b * ngroups() + g) * N + n);
  }
  TORCH_LOWBIT_HD float offset_at(int64_t g, int64_t n) const { return scale_at(offset, g * N + n); }
  TORCH_LOWBIT_HD uint8_t byte_at(int64_t b, int64_t n, int64_t c) const {
    return planes[panel_offset(b, n / kPanelRows, c) + n % kPanelRows];
  }
};

}  // namespace torch_lowbit
