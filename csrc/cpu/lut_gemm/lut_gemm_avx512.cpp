// LUT-GEMM, AVX-512: tables of mu = 4 activations (16 fp32 entries, one zmm), looked up for the
// 16 rows of a panel at once with vpermps. Each stored byte holds two 4-bit chunks (low nibble
// = k 0..3, high = k 4..7), so one 16-byte load of a panel's byte column feeds two lookups of
// 16 rows. Exact fp32 sums (no table quantisation), fp32 accumulation.
#include <immintrin.h>

#include <algorithm>

#include "common/bits_dispatch.h"
#include "cpu/lut_gemm/lut_gemm.h"

// Only this file's own functions get the ISA: every header is included above, so no inline or
// template function from a header is compiled for it (and then shared with other files);
// avx512_scales.h, included below the pragma, holds only internal-linkage helpers.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma")
#include "cpu/microkernels/avx512_scales.h"

// Bytes ahead on each bit-plane stream: 2 KiB measured best cold among 0/1/2/4 KiB on the
// Intel Xeon (benchmarks/cpu_gemm.py --cold); prefetcht1 instead of t0 was no better.
#ifndef TORCH_LOWBIT_LUT_PREFETCH
#define TORCH_LOWBIT_LUT_PREFETCH 2048
#endif

namespace torch_lowbit {
namespace cpu {
namespace {

// PANELS consecutive panels share every table load (the tables of a row, 64 KiB at K = 4096,
// live in L2: loading them once per two panels halves that traffic).
template <int BITS, int PANELS>
void panels(const float* tables, const float* group_sums, int64_t M, const BcqWeight& w, int64_t p,
            float* y) {
  __mmask16 live[PANELS];
  for (int q = 0; q < PANELS; ++q) {
    live[q] = live_mask(w.N - (p + q) * kPanelRows);
  }
  const int64_t ng = w.ngroups(), cols_per_group = w.group_size / 8;
  const int64_t table_stride = (w.Kp / 4) * kLut16Entries;
  for (int64_t m = 0; m < M; ++m) {
    const float* tm = tables + m * table_stride;
    __m512 out[PANELS];
    for (int q = 0; q < PANELS; ++q) out[q] = _mm512_setzero_ps();
    for (int64_t g = 0; g < ng; ++g) {
      if (m == 0) prefetch_scales_ahead(w, g, p);  // see kLutScaleAhead
      // Two accumulators per plane (even/odd byte columns, the loop unrolled by 2) halve the
      // add dependency chain; indices are compile-time so they stay in registers.
      __m512 acc0[PANELS][BITS], acc1[PANELS][BITS];
      for (int q = 0; q < PANELS; ++q)
        for (int b = 0; b < BITS; ++b) acc0[q][b] = acc1[q][b] = _mm512_setzero_ps();
      const int64_t c0 = g * cols_per_group;  // cols_per_group = G / 8 is even
      for (int64_t c = c0; c < c0 + cols_per_group; c += 2) {
        const float* t = tm + 2 * c * kLut16Entries;
        const __m512 t0 = _mm512_loadu_ps(t), t1 = _mm512_loadu_ps(t + 16);
        const __m512 t2 = _mm512_loadu_ps(t + 32), t3 = _mm512_loadu_ps(t + 48);
#pragma GCC unroll 2
        for (int q = 0; q < PANELS; ++q) {
#pragma GCC unroll 8
          for (int b = 0; b < BITS; ++b) {
            const uint8_t* src = w.planes + w.panel_offset(b, p + q, c);
            // Each plane is a sequential stream (a panel's plane is followed by the next
            // panel's): prefetch it far enough ahead to cover DRAM latency when weights are cold.
            if (TORCH_LOWBIT_LUT_PREFETCH > 0)
              _mm_prefetch(reinterpret_cast<const char*>(src) + TORCH_LOWBIT_LUT_PREFETCH, _MM_HINT_T0);
            const __m512i i0 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
            const __m512i i1 = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + kPanelRows)));
            // vpermps reads only the low 4 bits of each index: the byte itself indexes its low
            // nibble, the byte >> 4 its high nibble, and no masking uop is needed.
            acc0[q][b] = _mm512_add_ps(acc0[q][b], _mm512_add_ps(_mm512_permutexvar_ps(i0, t0),
                                                                 _mm512_permutexvar_ps(_mm512_srli_epi32(i0, 4), t1)));
            acc1[q][b] = _mm512_add_ps(acc1[q][b], _mm512_add_ps(_mm512_permutexvar_ps(i1, t2),
                                                                 _mm512_permutexvar_ps(_mm512_srli_epi32(i1, 4), t3)));
          }
        }
      }
      const __m512 gsum = _mm512_set1_ps(group_sums[m * ng + g]);
      for (int q = 0; q < PANELS; ++q) {
        const int64_t n0 = (p + q) * kPanelRows;
#pragma GCC unroll 8
        for (int b = 0; b < BITS; ++b)
          out[q] = _mm512_fmadd_ps(load_scales(w.alpha_ptr(b, g, n0), w.half, live[q]),
                                   _mm512_add_ps(acc0[q][b], acc1[q][b]), out[q]);
        out[q] = _mm512_fmadd_ps(load_scales(w.offset_ptr(g, n0), w.half, live[q]), gsum, out[q]);
      }
    }
    for (int q = 0; q < PANELS; ++q)
      _mm512_mask_storeu_ps(y + m * w.N + (p + q) * kPanelRows, live[q], out[q]);
  }
}

}  // namespace

void lut_gemm_panels_avx512(const float* tables, const float* group_sums, int64_t M,
                          const BcqWeight& w, int64_t p0, int64_t p1, float* y) {
  with_bits(w.bits, [&](auto bits) {
    constexpr int kBits = decltype(bits)::value;
    int64_t p = p0;
    // Two panels at a time while their accumulators fit the 32 zmm registers (bits <= 4): they
    // share each table load (benchmarks/cpu_gemm.py measured pairs faster at every size once the
    // scales are prefetched).
    if constexpr (kBits <= 4)
      for (; p + 2 <= p1; p += 2) panels<kBits, 2>(tables, group_sums, M, w, p, y);
    for (; p < p1; ++p) panels<kBits, 1>(tables, group_sums, M, w, p, y);
  });
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
