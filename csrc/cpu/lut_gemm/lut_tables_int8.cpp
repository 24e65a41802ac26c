// Int8 activation-sum tables for the int8 LUT-GEMM kernels (the T-MAC method): per chunk of 4
// activations the 16 signed sums +-x0 +-x1 +-x2 +-x3, quantized to int8 with one scale per
// table block of lut_int8_block(G) activations (the largest |sum| of the block maps to 127).
// Plain C++: building the tables is ~Kp * 16 operations per row, next to N * Kp * bits / 64
// lookup instructions for the product.
#include <algorithm>
#include <cmath>

#include "cpu/lut_gemm/lut_gemm.h"

namespace torch_lowbit {
namespace cpu {

void lut_build_tables_int8(const float* x, int64_t K, int64_t Kp, int64_t group_size,
                           int8_t* tables, float* scales, float* group_sums) {
  const int64_t block = lut_int8_block(group_size);
  for (int64_t g = 0; g < Kp / group_size; ++g) group_sums[g] = 0.f;
  for (int64_t k0 = 0; k0 < Kp; k0 += block) {
    float xs[64 + 3];
    float largest = 0.f, total = 0.f;
    for (int64_t j = 0; j < block; ++j) {
      xs[j] = k0 + j < K ? x[k0 + j] : 0.f;  // padding columns read as zero activations
      total += xs[j];
    }
    for (int64_t j = 0; j < block; j += 4)
      largest = std::max(largest, std::fabs(xs[j]) + std::fabs(xs[j + 1]) + std::fabs(xs[j + 2]) + std::fabs(xs[j + 3]));
    group_sums[k0 / group_size] += total;
    const float scale = largest / 127.f;
    const float inv = largest > 0.f ? 127.f / largest : 0.f;
    scales[k0 / block] = scale;
    for (int64_t j = 0; j < block; j += 4) {
      const int64_t i = (k0 + j) / 4;  // chunk i = 4 q + 2 lane + h (lut_gemm.h)
      int8_t* t = tables + (i / 4) * 64 + (i % 2) * 32 + ((i / 2) % 2) * 16;
      // Entry c sums +x_j where bit j of c is set, -x_j elsewhere; entry 15 - c is its
      // negation (mirror consolidation): 8 computed, 8 negated, rounding symmetric.
      for (int c = 0; c < 8; ++c) {
        float v = 0.f;
        for (int b = 0; b < 4; ++b) v += (c >> b & 1) ? xs[j + b] : -xs[j + b];
        const int q = static_cast<int>(std::lround(v * inv));
        const int8_t clamped = static_cast<int8_t>(std::max(-127, std::min(127, q)));
        t[c] = clamped;
        t[15 - c] = static_cast<int8_t>(-clamped);
      }
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit
