// AVX2 building blocks of the tiled GEMM and the im2win conv: the AVX-512 design with 8-lane
// registers. Strips are Bp[k][16]; the micro-kernel is 6x16 (12 ymm accumulators). BCQ expansion turns each 16-bit row mask into
// lane masks (broadcast, and with the lane's bit, compare) for a blend of +/-alpha.
#include <immintrin.h>

#include <algorithm>

#include "cpu/microkernels/microkernels.h"

// Only this file's own functions get the ISA: every header is included above, so no inline or
// template function from a header is compiled for it (and then shared with other files).
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace torch_lowbit {
namespace cpu {
namespace {

constexpr int kNR = 16;
constexpr int kMR = 6;

// Scales of 16 rows from index idx of base (fp16 or fp32), rows past N as zero.
void load_panel_scales(const BcqWeight& w, const void* base, int64_t idx, int64_t rows, __m256* out) {
  float buf[kPanelRows] = {};
  for (int64_t r = 0; r < rows; ++r) buf[r] = w.scale_at(base, idx + r);
  out[0] = _mm256_loadu_ps(buf);
  out[1] = _mm256_loadu_ps(buf + 8);
}

void expand_bcq_panel(const BcqWeight& w, int64_t p, int64_t k0, int64_t kb, float* dst) {
  const int64_t n0 = p * kPanelRows;
  const int64_t rows = std::min<int64_t>(kPanelRows, w.N - n0);
  const int64_t ng = w.ngroups();
  const __m256i lane_bits0 = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256i lane_bits1 = _mm256_slli_epi32(lane_bits0, 8);
  for (int64_t k = k0; k < k0 + kb;) {
    const int64_t g = k / w.group_size;
    const int64_t end = std::min(k0 + kb, (g + 1) * w.group_size);
    __m256 alpha[8][2], offset[2];
    for (int64_t b = 0; b < w.bits; ++b) load_panel_scales(w, w.alpha, (b * ng + g) * w.N + n0, rows, alpha[b]);
    load_panel_scales(w, w.offset, g * w.N + n0, rows, offset);
    for (; k < end; k += 8) {
      const int64_t c = k / 8;
      __m128i bytes[8];
      for (int64_t b = 0; b < w.bits; ++b)
        bytes[b] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.planes + w.panel_offset(b, p, c)));
      for (int t = 0; t < 8; ++t) {
        __m256 v0 = offset[0], v1 = offset[1];
        const __m128i shift = _mm_cvtsi32_si128(7 - t);
        for (int64_t b = 0; b < w.bits; ++b) {
          const __m256i mask = _mm256_set1_epi32(_mm_movemask_epi8(_mm_sll_epi16(bytes[b], shift)));
          const __m256 plus0 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(mask, lane_bits0), lane_bits0));
          const __m256 plus1 = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(mask, lane_bits1), lane_bits1));
          const __m256 neg0 = _mm256_sub_ps(_mm256_setzero_ps(), alpha[b][0]);
          const __m256 neg1 = _mm256_sub_ps(_mm256_setzero_ps(), alpha[b][1]);
          v0 = _mm256_add_ps(v0, _mm256_blendv_ps(neg0, alpha[b][0], plus0));
          v1 = _mm256_add_ps(v1, _mm256_blendv_ps(neg1, alpha[b][1], plus1));
        }
        _mm256_storeu_ps(dst + (k - k0 + t) * kNR, v0);
        _mm256_storeu_ps(dst + (k - k0 + t) * kNR + 8, v1);
      }
    }
  }
}

// a[i] points at row i's first k (rows of A may lie anywhere).
template <int MR>
void micro_kernel(const float* const* a, const float* bp, int64_t kb, float* c, int64_t ldc,
                  int64_t cols) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kb; ++k) {
    const __m256 b0 = _mm256_loadu_ps(bp + k * kNR);
    const __m256 b1 = _mm256_loadu_ps(bp + k * kNR + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a[i] + k);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  // Masked adds into c, unrolled: an epilogue that read acc[] in a loop kept the accumulators
  // in memory, and GCC stored all 12 to the stack on every k (0.5x oneDNN's AVX2 conv).
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols)), lane);
  const __m256i m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cols) - 8), lane);
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    _mm256_maskstore_ps(ci, m0, _mm256_add_ps(_mm256_maskload_ps(ci, m0), acc[i][0]));
    _mm256_maskstore_ps(ci + 8, m1, _mm256_add_ps(_mm256_maskload_ps(ci + 8, m1), acc[i][1]));
  }
}

// The micro-kernel for the last rows of a sweep (mr < kMR) picks its row count at compile time.
void micro_kernel_rows(int64_t mr, const float* const* a, const float* bp, int64_t kb, float* c,
                       int64_t ldc, int64_t cols) {
  switch (mr) {
    case 6: return micro_kernel<6>(a, bp, kb, c, ldc, cols);
    case 5: return micro_kernel<5>(a, bp, kb, c, ldc, cols);
    case 4: return micro_kernel<4>(a, bp, kb, c, ldc, cols);
    case 3: return micro_kernel<3>(a, bp, kb, c, ldc, cols);
    case 2: return micro_kernel<2>(a, bp, kb, c, ldc, cols);
    default: return micro_kernel<1>(a, bp, kb, c, ldc, cols);
  }
}

}  // namespace

void expand_bcq_strip_avx2(const BcqWeight& w, int64_t n0, int64_t k0, int64_t kb, float* dst) {
  // kNR rows starting at n0 (a multiple of 16); rows past N expand to zero.
  for (int64_t half = 0; half < kNR / kPanelRows; ++half) {
    const int64_t p = n0 / kPanelRows + half;
    if (p < w.panels()) {
      expand_bcq_panel(w, p, k0, kb, dst + kPanelRows * half);
    } else {
      for (int64_t k = 0; k < kb; ++k)
        for (int64_t j = 0; j < kPanelRows; ++j) dst[k * kNR + kPanelRows * half + j] = 0.f;
    }
  }
}

void gemm_rows_avx2(const float* const* a, int64_t M, int64_t kb, const float* strip, float* c,
                    int64_t ldc, int64_t cols) {
  for (int64_t m0 = 0; m0 < M; m0 += kMR)
    micro_kernel_rows(std::min<int64_t>(kMR, M - m0), a + m0, strip, kb, c + m0 * ldc, ldc, cols);
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
