// AVX-512 building blocks of the tiled GEMM and the im2win conv (drivers: tiled_gemm.cpp,
// im2win_conv.cpp): BCQ expansion into 32-column strips Bp[k][32] (each stored byte column of a
// 16-row panel gives, per bit t, a 16-bit row mask -> one masked blend of +/-alpha per plane),
// and a 6x32 register-tiled FMA micro-kernel (12 zmm accumulators) over a strip.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "common/bits_dispatch.h"
#include "cpu/microkernels/microkernels.h"

// Only this file's own functions get the ISA: every header is included above, so no inline or
// template function from a header is compiled for it (and then shared with other files);
// avx512_scales.h, included below the pragma, holds only internal-linkage helpers.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include "cpu/microkernels/avx512_scales.h"

namespace torch_lowbit {
namespace cpu {
namespace {

constexpr int kNR = 32;
constexpr int kMR = 6;


// Rows [16 p, 16 p + 16) of W, k in [k0, k0 + kb), into dst[(k - k0) * 32 + j].
// W = (offset - sum_b alpha_b) + sum_b 2 alpha_b [bit_b set]: per plane and k one vptestmb
// (bit k % 8 of the panel's 16 bytes -> a 16-row mask) and one masked add.
template <int BITS>
void expand_bcq_panel(const BcqWeight& w, int64_t p, int64_t k0, int64_t kb, float* dst) {
  const int64_t n0 = p * kPanelRows;
  const __mmask16 live = live_mask(w.N - n0);
  for (int64_t k = k0; k < k0 + kb;) {
    const int64_t g = k / w.group_size;
    const int64_t end = std::min(k0 + kb, (g + 1) * w.group_size);
    __m512 twice_alpha[BITS];
    const __m512 base = group_scales<BITS>(w, g, n0, live, twice_alpha);
    for (; k < end; k += 8) {
      const int64_t c = k / 8;  // k0 and group boundaries are multiples of 8
      __m128i bytes[BITS];
#pragma GCC unroll 8
      for (int b = 0; b < BITS; ++b)
        bytes[b] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.planes + w.panel_offset(b, p, c)));
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) {
        const __m128i bit = _mm_set1_epi8(static_cast<char>(1 << t));
        __m512 v = base;
#pragma GCC unroll 8
        for (int b = 0; b < BITS; ++b)
          v = _mm512_mask_add_ps(v, _mm_test_epi8_mask(bytes[b], bit), v, twice_alpha[b]);
        _mm512_storeu_ps(dst + (k - k0 + t) * kNR, v);
      }
    }
  }
}

// a[i] points at row i's first k: the rows of A may lie anywhere (im2win pixels of several
// output rows), so every row has its own pointer.
template <int MR>
void micro_kernel(const float* const* a, const float* bp, int64_t kb, float* c, int64_t ldc,
                  __mmask16 m0, __mmask16 m1) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kb; ++k) {
    const __m512 b0 = _mm512_loadu_ps(bp + k * kNR);
    const __m512 b1 = _mm512_loadu_ps(bp + k * kNR + 16);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i][k]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    _mm512_mask_storeu_ps(ci, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, ci), acc[i][0]));
    _mm512_mask_storeu_ps(ci + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, ci + 16), acc[i][1]));
  }
}

// The micro-kernel for the last rows of a sweep (mr < kMR) picks its row count at compile time.
void micro_kernel_rows(int64_t mr, const float* const* a, const float* bp, int64_t kb, float* c,
                       int64_t ldc, const __mmask16 mk0, const __mmask16 mk1) {
  switch (mr) {
    case 6: return micro_kernel<6>(a, bp, kb, c, ldc, mk0, mk1);
    case 5: return micro_kernel<5>(a, bp, kb, c, ldc, mk0, mk1);
    case 4: return micro_kernel<4>(a, bp, kb, c, ldc, mk0, mk1);
    case 3: return micro_kernel<3>(a, bp, kb, c, ldc, mk0, mk1);
    case 2: return micro_kernel<2>(a, bp, kb, c, ldc, mk0, mk1);
    default: return micro_kernel<1>(a, bp, kb, c, ldc, mk0, mk1);
  }
}

}  // namespace

void expand_bcq_strip_avx512(const BcqWeight& w, int64_t n0, int64_t k0, int64_t kb, float* dst) {
  // kNR rows starting at n0 (a multiple of 16); rows past N expand to zero.
  for (int64_t half = 0; half < kNR / kPanelRows; ++half) {
    const int64_t p = n0 / kPanelRows + half;
    if (p < w.panels()) {
      with_bits(w.bits, [&](auto bits) {
        expand_bcq_panel<decltype(bits)::value>(w, p, k0, kb, dst + kPanelRows * half);
      });
    } else {
      for (int64_t k = 0; k < kb; ++k)
        for (int64_t j = 0; j < kPanelRows; ++j) dst[k * kNR + kPanelRows * half + j] = 0.f;
    }
  }
}

namespace {

// In-register transpose of 16 rows of 16 floats: on return r[c] holds column c.
inline void transpose16(__m512 r[16]) {
  __m512 t[16], u[16], v[8], w[8];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  // u[4q + j]: rows 4q..4q+3 at columns j, j + 4, j + 8, j + 12 (one per 128-bit lane)
  for (int q = 0; q < 4; ++q) {
    const __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 2]);
    const __m512d c = _mm512_castps_pd(t[4 * q + 1]), d = _mm512_castps_pd(t[4 * q + 3]);
    u[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int j = 0; j < 4; ++j) {
    v[2 * j] = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);      // rows 0-7: columns j, j + 8
    v[2 * j + 1] = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xdd);  // rows 0-7: columns j + 4, j + 12
    w[2 * j] = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
    w[2 * j + 1] = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xdd);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm512_shuffle_f32x4(v[2 * j], w[2 * j], 0x88);
    r[j + 8] = _mm512_shuffle_f32x4(v[2 * j], w[2 * j], 0xdd);
    r[j + 4] = _mm512_shuffle_f32x4(v[2 * j + 1], w[2 * j + 1], 0x88);
    r[j + 12] = _mm512_shuffle_f32x4(v[2 * j + 1], w[2 * j + 1], 0xdd);
  }
}

}  // namespace

void pack_strip_avx512(const float* src, int64_t ld, int64_t rows, int64_t K, float* strip) {
  for (int64_t half = 0; half < kNR / 16; ++half) {
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int64_t kc = std::min<int64_t>(16, K - k0);
      const __mmask16 kmask = live_mask(kc);
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t j = half * 16 + i;
        r[i] = j < rows ? _mm512_maskz_loadu_ps(kmask, src + j * ld + k0) : _mm512_setzero_ps();
      }
      transpose16(r);
      for (int64_t c = 0; c < kc; ++c) _mm512_storeu_ps(strip + (k0 + c) * kNR + half * 16, r[c]);
    }
  }
}

void transpose_avx512(const float* src, int64_t ld_src, int64_t rows, int64_t cols, float* dst,
                      int64_t ld_dst) {
  for (int64_t i0 = 0; i0 < rows; i0 += 16) {
    const int64_t ri = std::min<int64_t>(16, rows - i0);
    for (int64_t j0 = 0; j0 < cols; j0 += 16) {
      const int64_t cj = std::min<int64_t>(16, cols - j0);
      const __mmask16 load = live_mask(cj), store = live_mask(ri);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = i < ri ? _mm512_maskz_loadu_ps(load, src + (i0 + i) * ld_src + j0) : _mm512_setzero_ps();
      transpose16(r);
      for (int64_t j = 0; j < cj; ++j) _mm512_mask_storeu_ps(dst + (j0 + j) * ld_dst + i0, store, r[j]);
    }
  }
}

void gemm_rows_avx512(const float* const* a, int64_t M, int64_t kb, const float* strip, float* c,
                      int64_t ldc, int64_t cols) {
  for (int64_t m0 = 0; m0 < M; m0 += kMR)
    micro_kernel_rows(std::min<int64_t>(kMR, M - m0), a + m0, strip, kb, c + m0 * ldc, ldc,
                      live_mask(cols), live_mask(cols - 16));
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
