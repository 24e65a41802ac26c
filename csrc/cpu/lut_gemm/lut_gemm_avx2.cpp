// LUT-GEMM, AVX2: the same mu = 4 tables as the AVX-512 path; a panel's 16 rows are two halves of
// 8 lanes, and a 16-entry lookup is two 8-entry vpermps blended on bit 3 of the index.
#include <immintrin.h>

#include <algorithm>

#include "common/bits_dispatch.h"
#include "cpu/lut_gemm/lut_gemm.h"

// Only this file's own functions get the ISA: every header is included above, so no inline or
// template function from a header is compiled for it (and then shared with other files).
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace torch_lowbit {
namespace cpu {
namespace {

inline __m256 lookup16(__m256i idx, __m256 t0, __m256 t1) {
  const __m256 a = _mm256_permutevar8x32_ps(t0, idx);
  const __m256 b = _mm256_permutevar8x32_ps(t1, idx);
  // blendv picks by the sign bit: move bit 3 of the index there.
  return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

template <int BITS>
void panel(const float* tables, const float* group_sums, int64_t M, const BcqWeight& w, int64_t p,
           float* y) {
  const int64_t n0 = p * kPanelRows;
  const int64_t rows = std::min<int64_t>(kPanelRows, w.N - n0);
  const int64_t ng = w.ngroups(), cols_per_group = w.group_size / 8;
  const int64_t table_stride = (w.Kp / 4) * kLut16Entries;
  const __m256i low_nibble = _mm256_set1_epi32(15);
  float alpha_buf[kPanelRows], out_buf[kPanelRows];
  for (int64_t m = 0; m < M; ++m) {
    const float* tm = tables + m * table_stride;
    __m256 out[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int64_t g = 0; g < ng; ++g) {
      if (m == 0) prefetch_scales_ahead(w, g, p);  // see kLutScaleAhead
      __m256 acc[BITS][2];
      for (int b = 0; b < BITS; ++b) acc[b][0] = acc[b][1] = _mm256_setzero_ps();
      const int64_t c0 = g * cols_per_group;
      for (int64_t c = c0; c < c0 + cols_per_group; ++c) {
        const float* t = tm + 2 * c * kLut16Entries;
        const __m256 lo0 = _mm256_loadu_ps(t), lo1 = _mm256_loadu_ps(t + 8);
        const __m256 hi0 = _mm256_loadu_ps(t + 16), hi1 = _mm256_loadu_ps(t + 24);
        for (int b = 0; b < BITS; ++b) {
          const uint8_t* src = w.planes + w.panel_offset(b, p, c);
          for (int h = 0; h < 2; ++h) {
            const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 8 * h)));
            const __m256 lo = lookup16(_mm256_and_si256(idx, low_nibble), lo0, lo1);
            const __m256 hi = lookup16(_mm256_srli_epi32(idx, 4), hi0, hi1);
            acc[b][h] = _mm256_add_ps(acc[b][h], _mm256_add_ps(lo, hi));
          }
        }
      }
      for (int h = 0; h < 2; ++h) {
        for (int b = 0; b < BITS; ++b) {
          for (int j = 0; j < 8; ++j) {
            const int64_t r = 8 * h + j;
            alpha_buf[r] = r < rows ? w.alpha_at(b, g, n0 + r) : 0.f;
          }
          out[h] = _mm256_fmadd_ps(_mm256_loadu_ps(alpha_buf + 8 * h), acc[b][h], out[h]);
        }
        for (int j = 0; j < 8; ++j) {
          const int64_t r = 8 * h + j;
          alpha_buf[r] = r < rows ? w.offset_at(g, n0 + r) : 0.f;
        }
        out[h] = _mm256_fmadd_ps(_mm256_loadu_ps(alpha_buf + 8 * h), _mm256_set1_ps(group_sums[m * ng + g]), out[h]);
      }
    }
    _mm256_storeu_ps(out_buf, out[0]);
    _mm256_storeu_ps(out_buf + 8, out[1]);
    std::copy(out_buf, out_buf + rows, y + m * w.N + n0);
  }
}

}  // namespace

void lut_gemm_panels_avx2(const float* tables, const float* group_sums, int64_t M,
                          const BcqWeight& w, int64_t p0, int64_t p1, float* y) {
  with_bits(w.bits, [&](auto bits) {
    for (int64_t p = p0; p < p1; ++p) panel<decltype(bits)::value>(tables, group_sums, M, w, p, y);
  });
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
