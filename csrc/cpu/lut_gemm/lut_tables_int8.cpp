// Int8 activation-sum tables for the int8 LUT-GEMM kernels (the T-MAC method): per chunk of 4
// activations the 16 signed sums +-x0 +-x1 +-x2 +-x3, quantized to int8 with one scale per
// table block of lut_int8_block(G) activations (the largest |sum| of the block maps to 127).
//
// AVX2 (the int8 tables only run on SIMD ISAs): a decode step builds tables for every layer, and
// the scalar builder (a libm lround per entry) cost 25-60 us a call on K = 2048..5632, as much as
// the whole product of a 256 x 2048 layer. Here one chunk is two vectors: entries 0-7 are
// S x0..x2 - x3 and entries 8-15 are S x0..x2 + x3 (S the sign pattern of the entry's low three
// bits), so entry 15 - c = -(entry c) exactly (mirror consolidation: the negated terms round the
// same way) and round-to-nearest-even keeps the int8 tables mirrored too.
#include <immintrin.h>

#include <algorithm>

#include "cpu/lut_gemm/lut_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace torch_lowbit {
namespace cpu {
namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

constexpr int64_t kBlock = 32;  // lut_int8_block(): 8 chunks of 4 activations

}  // namespace

void lut_build_tables_int8(const float* x, int64_t K, int64_t Kp, int64_t group_size,
                           int8_t* tables, float* scales, float* group_sums) {
  const __m256 sign0 = _mm256_setr_ps(-1, 1, -1, 1, -1, 1, -1, 1);  // bit 0 of the entry
  const __m256 sign1 = _mm256_setr_ps(-1, -1, 1, 1, -1, -1, 1, 1);  // bit 1
  const __m256 sign2 = _mm256_setr_ps(-1, -1, -1, -1, 1, 1, 1, 1);  // bit 2
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  // packs_epi32 then packs_epi16 of two chunks leave their dwords lane-interleaved.
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t g = 0; g < Kp / group_size; ++g) group_sums[g] = 0.f;
  alignas(32) float padded[kBlock];
  for (int64_t k0 = 0; k0 < Kp; k0 += kBlock) {
    const float* xb = x + k0;
    if (k0 + kBlock > K) {  // padding columns read as zero activations
      for (int64_t j = 0; j < kBlock; ++j) padded[j] = k0 + j < K ? x[k0 + j] : 0.f;
      xb = padded;
    }
    const __m256 total = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(xb), _mm256_loadu_ps(xb + 8)),
                                       _mm256_add_ps(_mm256_loadu_ps(xb + 16), _mm256_loadu_ps(xb + 24)));
    group_sums[k0 / group_size] += hsum(total);
    __m256 lo[8], hi[8];
    __m256 largest = _mm256_setzero_ps();
    for (int j = 0; j < 8; ++j) {
      const float* c = xb + 4 * j;
      __m256 base = _mm256_mul_ps(sign0, _mm256_broadcast_ss(c));
      base = _mm256_fmadd_ps(sign1, _mm256_broadcast_ss(c + 1), base);
      base = _mm256_fmadd_ps(sign2, _mm256_broadcast_ss(c + 2), base);
      const __m256 x3 = _mm256_broadcast_ss(c + 3);
      lo[j] = _mm256_sub_ps(base, x3);
      hi[j] = _mm256_add_ps(base, x3);
      largest = _mm256_max_ps(largest, _mm256_and_ps(lo[j], abs_mask));  // hi = -lo mirrored
    }
    const float big = hmax(largest);
    scales[k0 / kBlock] = big / 127.f;
    const __m256 inv = _mm256_set1_ps(big > 0.f ? 127.f / big : 0.f);
    for (int j = 0; j < 8; j += 2) {
      const __m256i a = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(lo[j], inv)),
                                           _mm256_cvtps_epi32(_mm256_mul_ps(hi[j], inv)));
      const __m256i b = _mm256_packs_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(lo[j + 1], inv)),
                                           _mm256_cvtps_epi32(_mm256_mul_ps(hi[j + 1], inv)));
      const __m256i both = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), order);
      // chunks 2c (low nibble of byte column c = j / 2) and 2c + 1 of this block (lut_gemm.h).
      int8_t* t = tables + (k0 / kBlock) * kLutInt8BlockBytes + (j / 2) * 16;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t), _mm256_castsi256_si128(both));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 64), _mm256_extracti128_si256(both, 1));
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
