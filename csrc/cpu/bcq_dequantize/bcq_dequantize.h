// W = bcq_dequantize(planes, alpha, offset) on the CPU: raw pointers, no torch headers.
#pragma once
#include <cstdint>

#include "common/bcq_format.h"
#include "cpu/isa/isa.h"

namespace torch_lowbit {
namespace cpu {

// The pieces both kernels share. Per (row, group) the bits + 1 scales are converted once, and
// each weight is base + sum_b bit_b * 2 alpha_b with base = offset - sum_b alpha_b (the +-1
// form without a select): converting the fp16 scales per element made this 10 ns per weight.
constexpr int64_t kMaxBits = 8;
// row[b][c * 16] = byte column c of plane b for row n.
inline void row_planes(const BcqWeight& w, int64_t n, const uint8_t** row) {
  for (int64_t b = 0; b < w.bits; ++b) row[b] = w.planes + w.panel_offset(b, n / kPanelRows, 0) + n % kPanelRows;
}
// two_alpha[b] = 2 alpha[b, g, n]; returns base = offset[g, n] - sum_b alpha[b, g, n].
inline float group_scales(const BcqWeight& w, int64_t g, int64_t n, float* two_alpha) {
  float base = w.offset_at(g, n);
  for (int64_t b = 0; b < w.bits; ++b) {
    const float a = w.alpha_at(b, g, n);
    two_alpha[b] = 2.f * a;
    base -= a;
  }
  return base;
}
inline float weight_at(const uint8_t* const* row, const float* two_alpha, int64_t bits, float base, int64_t k) {
  float v = base;
  for (int64_t b = 0; b < bits; ++b)
    v += static_cast<float>((row[b][(k >> 3) * kPanelRows] >> (k & 7)) & 1) * two_alpha[b];
  return v;
}

// out[(n - n0) * ld + (k - k0)] = W[n, k] for n in [n0, n1), k in [k0, k1).
void bcq_dequantize_block(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                          float* out, int64_t ld);
// The same, 8 weights per AVX2 instruction (bcq_dequantize_avx2.cpp).
void bcq_dequantize_block_avx2(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                               float* out, int64_t ld);
// The whole weight into out[N, K] on the `isa` path, threads over blocks of rows.
void bcq_dequantize(const BcqWeight& w, Isa isa, float* out);
// Rows [n0, n1) into out[n1 - n0, K], the same way.
void bcq_dequantize_rows(const BcqWeight& w, Isa isa, int64_t n0, int64_t n1, float* out);

}  // namespace cpu
}  // namespace torch_lowbit
