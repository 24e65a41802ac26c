// bcq_dequantize, AVX2: per row and weight group the bits + 1 scales are converted once; each
// byte column of a plane then gives the 8 weights' bits as a lane mask (broadcast byte & 1 << j),
// and each weight is base + sum_b [bit_b] * 2 alpha_b, 8 weights per instruction.
#include <immintrin.h>

#include <algorithm>

#include "cpu/bcq_dequantize/bcq_dequantize.h"

// Only this file's own functions get the ISA: every header is included above, so no inline or
// template function from a header is compiled for it (and then shared with other files).
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace torch_lowbit {
namespace cpu {

void bcq_dequantize_block_avx2(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                               float* out, int64_t ld) {
  const int64_t G = w.group_size;
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  for (int64_t n = n0; n < n1; ++n) {
    float* o = out + (n - n0) * ld;
    const uint8_t* row[kMaxBits];
    row_planes(w, n, row);
    for (int64_t g = k0 / G; g * G < k1; ++g) {
      float two_alpha[kMaxBits];
      const float base = group_scales(w, g, n, two_alpha);
      __m256 two_alpha_v[kMaxBits];
      for (int64_t b = 0; b < w.bits; ++b) two_alpha_v[b] = _mm256_set1_ps(two_alpha[b]);
      const __m256 base_v = _mm256_set1_ps(base);
      const int64_t ka = std::max(k0, g * G), kb = std::min(k1, (g + 1) * G);
      int64_t k = ka;
      for (; k < kb && (k & 7); ++k) o[k - k0] = weight_at(row, two_alpha, w.bits, base, k);
      for (; k + 8 <= kb; k += 8) {
        __m256 v = base_v;
        for (int64_t b = 0; b < w.bits; ++b) {
          const __m256i byte = _mm256_set1_epi32(row[b][(k >> 3) * kPanelRows]);
          const __m256i set = _mm256_cmpeq_epi32(_mm256_and_si256(byte, lane_bit), lane_bit);
          v = _mm256_add_ps(v, _mm256_and_ps(_mm256_castsi256_ps(set), two_alpha_v[b]));
        }
        _mm256_storeu_ps(o + (k - k0), v);
      }
      for (; k < kb; ++k) o[k - k0] = weight_at(row, two_alpha, w.bits, base, k);
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
