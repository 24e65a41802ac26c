// The panel loop shared by the two AVX-512 int8-table kernels (lut_gemm_int8_avx512.cpp: vpshufb,
// lut_gemm_int8_avx512vnni.cpp: vpermb + vpdpbusd). Include it after the file's
// `#pragma GCC target(...)` and after its `Lookup`: everything here has internal linkage, so each
// file compiles its own copy for its own ISA. The including file includes bcq_format.h,
// bits_dispatch.h, lut_gemm.h and lut_scale_chunk.h above its pragma (their inline functions must
// not be compiled with the ISA flags), so this header does not include them.
//
// `Lookup` (one per file) provides
//   Indices load(const uint8_t* src) const           the table indices of one 64-byte plane load
//                                                     (a block's 4 byte columns x 16 rows)
//   static void add(tlo, thi, const Indices&, mult, acc_lo, acc_hi)
//                                                     the block's lookups, weighted by mult (u8)
//   static void widen(acc_lo, acc_hi, scale, sum)    sum (fp32, rows 0-15) += scale x the block
//   static constexpr bool sums_fit(int bits)         a block's plane sums, weighted 2^b, fit acc
#pragma once
#include <immintrin.h>

#include "cpu/microkernels/avx512_scales.h"

namespace torch_lowbit {
namespace cpu {
namespace {

// Bytes ahead on each bit-plane stream (prefetcht0 per 64-byte plane load): the hardware
// prefetchers alone left the kernel at ~21 GB/s on weights past the L3. AMD EPYC Zen 5, 2 threads,
// m = 1 3-bit, medians of 15 alternating rounds: 28672x8192 4.68 ms without, 3.89 / 3.44 / 3.07 /
// 3.17 ms at 512 / 1024 / 2048 / 4096 bytes; 11008x4096 0.644 vs 0.492 ms at 2048.
constexpr int64_t kInt8PlanePrefetch = 2048;
inline void prefetch_plane(const uint8_t* src) {
  _mm_prefetch(reinterpret_cast<const char*>(src) + kInt8PlanePrefetch, _MM_HINT_T0);
}

inline __m512i load_table(const int8_t* t) { return _mm512_loadu_si512(t); }

// Where the tables and table scales of activation rows m..m+R-1 start for one group.
template <int R>
struct RowTables {
  const int8_t* t[R];
  const float* ts[R];
  RowTables(const int8_t* tables, const float* table_scales, int64_t m, int64_t table_stride,
            int64_t scale_stride, int64_t t0, int64_t ts0) {
    for (int r = 0; r < R; ++r) {
      t[r] = tables + (m + r) * table_stride + t0;
      ts[r] = table_scales + (m + r) * scale_stride + ts0;
    }
  }
};

// A uniform grid (what rtn / mse produce): alpha_b = alpha_0 * 2^b for every plane and live row of
// the group, so the planes can be summed in integers with one widening per block for all of them.
// Exact compare: fp16 and fp32 scales scale by powers of two without rounding. Fills alpha0.
template <int BITS>
bool uniform_group(const BcqWeight& w, int64_t g, int64_t n0, __mmask16 live, __m512& alpha0) {
  alpha0 = load_scales(w.alpha_ptr(0, g, n0), w.half, live);
  for (int b = 1; b < BITS; ++b) {
    const __m512 a = load_scales(w.alpha_ptr(b, g, n0), w.half, live);
    const __m512 f = _mm512_set1_ps(static_cast<float>(1 << b));
    if (_mm512_cmp_ps_mask(a, _mm512_mul_ps(alpha0, f), _CMP_EQ_OQ) != 0xFFFF) return false;
  }
  return true;
}

// R activation rows (1 or 2) of one uniform group: out[r] += alpha0 x sum over blocks of the
// table scale x the integer plane sums (planes weighted 2^b). The rows share each plane load and
// its indices.
template <int BITS, int R>
inline void uniform_rows(const Lookup& lookup, const uint8_t* src, int64_t plane_stride,
                         const int8_t* const* t, const float* const* ts, int64_t blocks, __m512 alpha0,
                         __m512* out) {
  __m512 sum[R];
  for (int r = 0; r < R; ++r) sum[r] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < blocks; ++blk, src += 4 * kPanelRows) {
    __m512i acc[R][2], tlo[R], thi[R];
    for (int r = 0; r < R; ++r) {
      acc[r][0] = acc[r][1] = _mm512_setzero_si512();
      tlo[r] = load_table(t[r] + blk * kLutInt8BlockBytes);
      thi[r] = load_table(t[r] + blk * kLutInt8BlockBytes + 64);
    }
#pragma GCC unroll 8
    for (int b = 0; b < BITS; ++b) {
      prefetch_plane(src + b * plane_stride);
      const auto x = lookup.load(src + b * plane_stride);
      const __m512i mult = _mm512_set1_epi8(static_cast<char>(1 << b));
      for (int r = 0; r < R; ++r) Lookup::add(tlo[r], thi[r], x, mult, acc[r][0], acc[r][1]);
    }
    for (int r = 0; r < R; ++r) Lookup::widen(acc[r][0], acc[r][1], _mm512_set1_ps(ts[r][blk]), sum[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_fmadd_ps(alpha0, sum[r], out[r]);
}

// NB planes (1 or 2, with free alphas) of one group for R activation rows (1 or 2): out[r] +=
// sum_j alpha[j] x sum over blocks of the table scale x plane j's integer sums. Each plane is
// widened on its own; the rows share each plane load and its indices, the planes the table loads.
template <int NB, int R>
inline void free_rows(const Lookup& lookup, const uint8_t* src, int64_t plane_stride,
                      const int8_t* const* t, const float* const* ts, int64_t blocks,
                      const __m512* alpha, __m512* out) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512 sum[R][NB];
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) sum[r][j] = _mm512_setzero_ps();
  for (int64_t blk = 0; blk < blocks; ++blk, src += 4 * kPanelRows) {
    __m512i tlo[R], thi[R], acc[R][NB][2];
    for (int r = 0; r < R; ++r) {
      tlo[r] = load_table(t[r] + blk * kLutInt8BlockBytes);
      thi[r] = load_table(t[r] + blk * kLutInt8BlockBytes + 64);
    }
    for (int j = 0; j < NB; ++j) {
      prefetch_plane(src + j * plane_stride);
      const auto x = lookup.load(src + j * plane_stride);
      for (int r = 0; r < R; ++r) {
        acc[r][j][0] = acc[r][j][1] = _mm512_setzero_si512();
        Lookup::add(tlo[r], thi[r], x, ones, acc[r][j][0], acc[r][j][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m512 scale = _mm512_set1_ps(ts[r][blk]);
      for (int j = 0; j < NB; ++j) Lookup::widen(acc[r][j][0], acc[r][j][1], scale, sum[r][j]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int j = 0; j < NB; ++j) out[r] = _mm512_fmadd_ps(alpha[j], sum[r][j], out[r]);
}

// Panel p of w for M <= kLutRowsPerBlock activation rows, its scales from the gathered chunk `sc`
// at row sn0. Groups are the outer loop, so a group's scales are loaded and its grid checked once
// for all rows, and uniform groups run two rows per pass over the planes.
template <int BITS>
void panel(const Lookup& lookup, const int8_t* tables, const float* table_scales,
           const float* group_sums, int64_t M, const BcqWeight& w, int64_t p, const BcqWeight& sc,
           int64_t sn0, float* y) {
  const int64_t n0 = p * kPanelRows;
  const __mmask16 live = live_mask(w.N - n0);
  const int64_t ng = w.ngroups(), G = w.group_size, block = lut_int8_block(G);
  const int64_t blocks_per_group = G / block;
  const int64_t table_stride = lut_int8_table_bytes(w.Kp), scale_stride = w.Kp / block;
  const int64_t plane_stride = w.panel_offset(1, 0, 0);  // bytes from one plane to the next
  __m512 out[kLutRowsPerBlock];
  for (int64_t m = 0; m < M; ++m) out[m] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* src0 = w.planes + w.panel_offset(0, p, g * G / 8);
    const int64_t t0 = (g * G / block) * kLutInt8BlockBytes, ts0 = g * blocks_per_group;
    __m512 alpha0;
    if (Lookup::sums_fit(BITS) && uniform_group<BITS>(sc, g, sn0, live, alpha0)) {
      int64_t m = 0;
      for (; m + 2 <= M; m += 2) {
        const RowTables<2> rt(tables, table_scales, m, table_stride, scale_stride, t0, ts0);
        uniform_rows<BITS, 2>(lookup, src0, plane_stride, rt.t, rt.ts, blocks_per_group, alpha0, out + m);
      }
      if (m < M) {
        const RowTables<1> rt(tables, table_scales, m, table_stride, scale_stride, t0, ts0);
        uniform_rows<BITS, 1>(lookup, src0, plane_stride, rt.t, rt.ts, blocks_per_group, alpha0, out + m);
      }
    } else {
      // Free alphas (bcq, gptq's bcq grid) or more bits than the sums hold: each plane widened on
      // its own, two planes and two rows per pass (sharing table loads and plane indices).
      for (int b0 = 0; b0 < BITS; b0 += 2) {
        __m512 alpha[2];
        alpha[0] = load_scales(sc.alpha_ptr(b0, g, sn0), sc.half, live);
        const bool two_planes = b0 + 1 < BITS;
        if (two_planes) alpha[1] = load_scales(sc.alpha_ptr(b0 + 1, g, sn0), sc.half, live);
        const uint8_t* src = src0 + b0 * plane_stride;
        int64_t m = 0;
        for (; m + 2 <= M; m += 2) {
          const RowTables<2> rt(tables, table_scales, m, table_stride, scale_stride, t0, ts0);
          if (two_planes) free_rows<2, 2>(lookup, src, plane_stride, rt.t, rt.ts, blocks_per_group, alpha, out + m);
          else free_rows<1, 2>(lookup, src, plane_stride, rt.t, rt.ts, blocks_per_group, alpha, out + m);
        }
        if (m < M) {
          const RowTables<1> rt(tables, table_scales, m, table_stride, scale_stride, t0, ts0);
          if (two_planes) free_rows<2, 1>(lookup, src, plane_stride, rt.t, rt.ts, blocks_per_group, alpha, out + m);
          else free_rows<1, 1>(lookup, src, plane_stride, rt.t, rt.ts, blocks_per_group, alpha, out + m);
        }
      }
    }
    const __m512 offset = load_scales(sc.offset_ptr(g, sn0), sc.half, live);
    for (int64_t m = 0; m < M; ++m)
      out[m] = _mm512_fmadd_ps(offset, _mm512_set1_ps(group_sums[m * ng + g]), out[m]);
  }
  for (int64_t m = 0; m < M; ++m) _mm512_mask_storeu_ps(y + m * w.N + n0, live, out[m]);
}

// Panels [p0, p1), a chunk of panels' scales gathered at a time (lut_scale_chunk.h).
inline void int8_panels(const int8_t* tables, const float* table_scales, const float* group_sums,
                        int64_t M, const BcqWeight& w, int64_t p0, int64_t p1, float* y) {
  const Lookup lookup;
  with_bits(w.bits, [&](auto bits) {
    for_each_panel_with_scales(w, p0, p1, [&](int64_t p, const BcqWeight& sc, int64_t sn0) {
      panel<decltype(bits)::value>(lookup, tables, table_scales, group_sums, M, w, p, sc, sn0, y);
    });
  });
}

}  // namespace
}  // namespace cpu
}  // namespace torch_lowbit
