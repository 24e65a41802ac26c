// bcq_dequantize on the CPU: per (row, group) the scales are converted once, then each byte
// column gives 8 weights in fixed-size loops (which the compiler vectorises).
#include "cpu/bcq_dequantize/bcq_dequantize.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace torch_lowbit {
namespace cpu {

namespace {

inline float element(const uint8_t* const* row, const float* two_alpha, int64_t bits, float base,
                     int64_t k) {
  float v = base;
  for (int64_t b = 0; b < bits; ++b)
    v += static_cast<float>((row[b][(k >> 3) * kPanelRows] >> (k & 7)) & 1) * two_alpha[b];
  return v;
}

}  // namespace

void bcq_dequantize_block(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                          float* out, int64_t ld) {
  // Per (row, group) the bits + 1 scales are converted once, and each weight is
  // base + sum_b bit_b * 2 alpha_b with base = offset - sum_b alpha_b (the +-1 form without a
  // select): converting the fp16 scales per element made this 10 ns per weight.
  constexpr int64_t kMaxBits = 8;
  const int64_t G = w.group_size;
  for (int64_t n = n0; n < n1; ++n) {
    float* o = out + (n - n0) * ld;
    const uint8_t* row[kMaxBits];  // byte column c of plane b for this row: row[b][c * 16]
    for (int64_t b = 0; b < w.bits; ++b) row[b] = w.planes + w.panel_offset(b, n / kPanelRows, 0) + n % kPanelRows;
    for (int64_t g = k0 / G; g * G < k1; ++g) {
      float two_alpha[kMaxBits];
      float base = w.offset_at(g, n);
      for (int64_t b = 0; b < w.bits; ++b) {
        const float a = w.alpha_at(b, g, n);
        two_alpha[b] = 2.f * a;
        base -= a;
      }
      const int64_t ka = std::max(k0, g * G), kb = std::min(k1, (g + 1) * G);
      int64_t k = ka;
      for (; k < kb && (k & 7); ++k) o[k - k0] = element(row, two_alpha, w.bits, base, k);
      for (; k + 8 <= kb; k += 8) {  // a whole byte column: 8 weights, fixed-size loops
        float v[8];
        for (int j = 0; j < 8; ++j) v[j] = base;
        for (int64_t b = 0; b < w.bits; ++b) {
          const uint32_t byte = row[b][(k >> 3) * kPanelRows];
          for (int j = 0; j < 8; ++j) v[j] += static_cast<float>((byte >> j) & 1u) * two_alpha[b];
        }
        std::copy(v, v + 8, o + (k - k0));
      }
      for (; k < kb; ++k) o[k - k0] = element(row, two_alpha, w.bits, base, k);
    }
  }
}

void bcq_dequantize(const BcqWeight& w, Isa isa, float* out) {
  at::parallel_for(0, w.N, 16, [&](int64_t n0, int64_t n1) {
    if (isa >= Isa::kAvx2)
      bcq_dequantize_block_avx2(w, n0, n1, 0, w.K, out + n0 * w.K, w.K);
    else
      bcq_dequantize_block(w, n0, n1, 0, w.K, out + n0 * w.K, w.K);
  });
}

}  // namespace cpu
}  // namespace torch_lowbit
