// bcq_dequantize on the CPU: per (row, group) the scales are converted once, then each byte
// column gives 8 weights in fixed-size loops (which the compiler vectorises).
#include "cpu/bcq_dequantize/bcq_dequantize.h"

#include <ATen/Parallel.h>

#include <algorithm>

namespace torch_lowbit {
namespace cpu {


void bcq_dequantize_block(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                          float* out, int64_t ld) {
  const int64_t G = w.group_size;
  for (int64_t n = n0; n < n1; ++n) {
    float* o = out + (n - n0) * ld;
    const uint8_t* row[kMaxBits];
    row_planes(w, n, row);
    for (int64_t g = k0 / G; g * G < k1; ++g) {
      float two_alpha[kMaxBits];
      const float base = group_scales(w, g, n, two_alpha);
      const int64_t ka = std::max(k0, g * G), kb = std::min(k1, (g + 1) * G);
      int64_t k = ka;
      for (; k < kb && (k & 7); ++k) o[k - k0] = weight_at(row, two_alpha, w.bits, base, k);
      for (; k + 8 <= kb; k += 8) {  // a whole byte column: 8 weights, fixed-size loops
        float v[8];
        for (int j = 0; j < 8; ++j) v[j] = base;
        for (int64_t b = 0; b < w.bits; ++b) {
          const uint32_t byte = row[b][(k >> 3) * kPanelRows];
          for (int j = 0; j < 8; ++j) v[j] += static_cast<float>((byte >> j) & 1u) * two_alpha[b];
        }
        std::copy(v, v + 8, o + (k - k0));
      }
      for (; k < kb; ++k) o[k - k0] = weight_at(row, two_alpha, w.bits, base, k);
    }
  }
}

void bcq_dequantize_rows(const BcqWeight& w, Isa isa, int64_t n0, int64_t n1, float* out) {
  at::parallel_for(n0, n1, 16, [&](int64_t a, int64_t b) {
    if (isa >= Isa::kAvx2)
      bcq_dequantize_block_avx2(w, a, b, 0, w.K, out + (a - n0) * w.K, w.K);
    else
      bcq_dequantize_block(w, a, b, 0, w.K, out + (a - n0) * w.K, w.K);
  });
}

void bcq_dequantize(const BcqWeight& w, Isa isa, float* out) { bcq_dequantize_rows(w, isa, 0, w.N, out); }

}  // namespace cpu
}  // namespace torch_lowbit
