// LUT-GEMM with int8 tables, AVX-512 (F + BW): the AVX2 kernel's scheme on 64-byte vectors.
//
// One 64-byte load of a plane gives the 4 byte columns of a table block (32 activations) for a
// 16-row panel, column c in 128-bit lane c. Its low nibbles index the low-nibble tables of the 4
// columns (one 64-byte table load, lane c = column c: the layout in lut_gemm.h), its high nibbles
// the next 64 bytes; `vpshufb` looks up within each lane, so one instruction does 64 lookups.
// Interleaving the two results per row and one `vpmaddubsw` (by 1, or by 2^b where a uniform
// grid sums its planes in integers) sums them into int16 per row and column. Once per block the
// 4 columns are added across lanes (int16), widened to fp32 and multiplied by the table scale;
// each weight group then multiplies by alpha and adds offset x (exact fp32) group sum.
//
// Against the AVX2 kernel a plane load costs the same 11 instructions for twice the lookups, and
// the per-block widening is done once per 64-byte load instead of once per two 32-byte loads.
#include <immintrin.h>

#include <algorithm>

#include "common/bits_dispatch.h"
#include "cpu/lut_gemm/lut_gemm.h"
#include "cpu/lut_gemm/lut_scale_chunk.h"

// Only this file's own functions get the ISA (see lut_gemm_avx512.cpp); avx512_scales.h holds
// internal-linkage helpers only.
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
#include "cpu/microkernels/avx512_scales.h"

namespace torch_lowbit {
namespace cpu {
namespace {

// The low and high nibbles of one 64-byte plane load: the table indices of a block's 4 columns.
struct Nibbles {
  __m512i lo, hi;
  Nibbles(const uint8_t* src, __m512i mask) {
    const __m512i v = _mm512_loadu_si512(src);
    lo = _mm512_and_si512(v, mask);
    hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
  }
};

// acc_lo (rows 0-7) and acc_hi (rows 8-15), int16 per row in each column's lane, += the two
// lookups of every row and column weighted by `mult` (u8).
inline void lookup_add(__m512i tlo, __m512i thi, const Nibbles& x, __m512i mult, __m512i& acc_lo,
                       __m512i& acc_hi) {
  const __m512i rl = _mm512_shuffle_epi8(tlo, x.lo), rh = _mm512_shuffle_epi8(thi, x.hi);
  acc_lo = _mm512_add_epi16(acc_lo, _mm512_maddubs_epi16(mult, _mm512_unpacklo_epi8(rl, rh)));
  acc_hi = _mm512_add_epi16(acc_hi, _mm512_maddubs_epi16(mult, _mm512_unpackhi_epi8(rl, rh)));
}

// sum (rows 0-15, fp32) += scale x the block's per-row totals: the 4 column lanes of acc_lo and
// acc_hi added in int16, then widened.
inline void widen_block(__m512i acc_lo, __m512i acc_hi, __m512 scale, __m512& sum) {
  // [lo0 + lo2, lo1 + lo3, hi0 + hi2, hi1 + hi3], then lanes 0 and 2 + lanes 1 and 3.
  const __m512i s = _mm512_add_epi16(_mm512_shuffle_i64x2(acc_lo, acc_hi, _MM_SHUFFLE(1, 0, 1, 0)),
                                     _mm512_shuffle_i64x2(acc_lo, acc_hi, _MM_SHUFFLE(3, 2, 3, 2)));
  const __m512i t = _mm512_add_epi16(s, _mm512_shuffle_i64x2(s, s, _MM_SHUFFLE(2, 3, 0, 1)));
  const __m256i rows = _mm512_castsi512_si256(_mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(2, 0, 2, 0)));
  sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(rows)), scale, sum);
}

inline __m512i load_table(const int8_t* t) { return _mm512_loadu_si512(t); }

// A uniform grid: alpha_b = alpha_0 * 2^b for every plane and live row of the group (see the
// AVX2 kernel); fills alpha0.
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

// int16 range of one block summed over planes: 127 per lookup x 8 lookups (4 columns, 2 nibbles)
// x (2^bits - 1); bits <= 5.
template <int BITS>
constexpr bool fits_int16() { return 8 * 127 * ((1 << BITS) - 1) <= 32767; }

// R activation rows (1 or 2) of one uniform group: out[r] += alpha0 x sum over blocks of the
// table scale x the int16 plane sums (planes weighted 2^b). The rows share each plane load and
// its nibbles.
template <int BITS, int R>
inline void uniform_rows(const uint8_t* src, int64_t plane_stride, const int8_t* const* t,
                         const float* const* ts, int64_t blocks, __m512 alpha0, __m512* out) {
  const __m512i nibble = _mm512_set1_epi8(0x0f);
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
      const Nibbles x(src + b * plane_stride, nibble);
      const __m512i mult = _mm512_set1_epi8(static_cast<char>(1 << b));
      for (int r = 0; r < R; ++r) lookup_add(tlo[r], thi[r], x, mult, acc[r][0], acc[r][1]);
    }
    for (int r = 0; r < R; ++r) widen_block(acc[r][0], acc[r][1], _mm512_set1_ps(ts[r][blk]), sum[r]);
  }
  for (int r = 0; r < R; ++r) out[r] = _mm512_fmadd_ps(alpha0, sum[r], out[r]);
}

// Panel p of w for M <= kLutRowsPerBlock activation rows, scales from the gathered chunk `sc`
// at row sn0 (as in the AVX2 kernel: groups outer, two rows per pass over a uniform group).
template <int BITS>
void panel(const int8_t* tables, const float* table_scales, const float* group_sums, int64_t M,
           const BcqWeight& w, int64_t p, const BcqWeight& sc, int64_t sn0, float* y) {
  const int64_t n0 = p * kPanelRows;
  const __mmask16 live = live_mask(w.N - n0);
  const int64_t ng = w.ngroups(), G = w.group_size, block = lut_int8_block(G);
  const int64_t blocks_per_group = G / block;
  const int64_t table_stride = lut_int8_table_bytes(w.Kp), scale_stride = w.Kp / block;
  const int64_t plane_stride = w.panel_offset(1, 0, 0);  // bytes from one plane to the next
  const __m512i ones = _mm512_set1_epi8(1), nibble = _mm512_set1_epi8(0x0f);
  __m512 out[kLutRowsPerBlock];
  for (int64_t m = 0; m < M; ++m) out[m] = _mm512_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* src0 = w.planes + w.panel_offset(0, p, g * G / 8);
    const int64_t t0 = (g * G / block) * kLutInt8BlockBytes, ts0 = g * blocks_per_group;
    __m512 alpha0;
    if (fits_int16<BITS>() && uniform_group<BITS>(sc, g, sn0, live, alpha0)) {
      int64_t m = 0;
      for (; m + 2 <= M; m += 2) {
        const int8_t* t[2] = {tables + m * table_stride + t0, tables + (m + 1) * table_stride + t0};
        const float* ts[2] = {table_scales + m * scale_stride + ts0, table_scales + (m + 1) * scale_stride + ts0};
        uniform_rows<BITS, 2>(src0, plane_stride, t, ts, blocks_per_group, alpha0, out + m);
      }
      if (m < M) {
        const int8_t* t[1] = {tables + m * table_stride + t0};
        const float* ts[1] = {table_scales + m * scale_stride + ts0};
        uniform_rows<BITS, 1>(src0, plane_stride, t, ts, blocks_per_group, alpha0, out + m);
      }
    } else {
      // Free alphas (bcq, gptq's bcq grid) or more bits than int16 holds: each plane widened on
      // its own, two planes per pass so that they share the table loads.
      for (int b0 = 0; b0 < BITS; b0 += 2) {
        const int nb = BITS - b0 >= 2 ? 2 : 1;
        __m512 alpha[2];
        for (int j = 0; j < nb; ++j) alpha[j] = load_scales(sc.alpha_ptr(b0 + j, g, sn0), sc.half, live);
        for (int64_t m = 0; m < M; ++m) {
          __m512 sum[2] = {_mm512_setzero_ps(), _mm512_setzero_ps()};
          const uint8_t* src = src0 + b0 * plane_stride;
          const int8_t* t = tables + m * table_stride + t0;
          const float* ts = table_scales + m * scale_stride + ts0;
          for (int64_t blk = 0; blk < blocks_per_group; ++blk, src += 4 * kPanelRows) {
            const __m512i tlo = load_table(t + blk * kLutInt8BlockBytes);
            const __m512i thi = load_table(t + blk * kLutInt8BlockBytes + 64);
            __m512i acc[2][2];
            for (int j = 0; j < nb; ++j) {
              acc[j][0] = acc[j][1] = _mm512_setzero_si512();
              lookup_add(tlo, thi, Nibbles(src + j * plane_stride, nibble), ones, acc[j][0], acc[j][1]);
            }
            const __m512 scale = _mm512_set1_ps(ts[blk]);
            for (int j = 0; j < nb; ++j) widen_block(acc[j][0], acc[j][1], scale, sum[j]);
          }
          for (int j = 0; j < nb; ++j) out[m] = _mm512_fmadd_ps(alpha[j], sum[j], out[m]);
        }
      }
    }
    const __m512 offset = load_scales(sc.offset_ptr(g, sn0), sc.half, live);
    for (int64_t m = 0; m < M; ++m)
      out[m] = _mm512_fmadd_ps(offset, _mm512_set1_ps(group_sums[m * ng + g]), out[m]);
  }
  for (int64_t m = 0; m < M; ++m) _mm512_mask_storeu_ps(y + m * w.N + n0, live, out[m]);
}

}  // namespace

void lut_gemm_panels_int8_avx512(const int8_t* tables, const float* table_scales,
                                 const float* group_sums, int64_t M, const BcqWeight& w, int64_t p0,
                                 int64_t p1, float* y) {
  const int64_t per_chunk = ScaleChunk::panels_per_chunk(w);
  ScaleChunk chunk(w, per_chunk);
  with_bits(w.bits, [&](auto bits) {
    for (int64_t c0 = p0; c0 < p1; c0 += per_chunk) {
      const int64_t c1 = std::min(p1, c0 + per_chunk), n0 = c0 * kPanelRows;
      const BcqWeight& sc = chunk.gather(w, n0, std::min(w.N, c1 * kPanelRows));
      for (int64_t p = c0; p < c1; ++p)
        panel<decltype(bits)::value>(tables, table_scales, group_sums, M, w, p, sc, p * kPanelRows - n0, y);
    }
  });
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
