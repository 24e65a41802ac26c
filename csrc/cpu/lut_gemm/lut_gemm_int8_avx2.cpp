// LUT-GEMM with int8 tables, AVX2 (AVX-512 CPUs run lut_gemm_int8_avx512.cpp, the same scheme
// on zmm): `vpshufb` looks up 32 table bytes per instruction straight from the stored bit-planes.
//
// One 32-byte load of a plane gives byte columns 2q and 2q+1 of a 16-row panel (lane 0, lane 1);
// its low nibbles index the tables of chunks 4q and 4q+2, its high nibbles those of 4q+1 and 4q+3
// (the table layout in lut_gemm.h puts exactly those side by side, 32 bytes apart). Interleaving the low- and
// high-nibble results per row and one `vpmaddubsw` sums them into int16, so a 32-byte load costs
// and, shift, and, 2 vpshufb, 2 unpacks, 2 vpmaddubsw and 2 int16 adds for 64 lookups; the planes
// of a column pair share its two table loads. Each table block (32 activations: one table
// scale) is summed in int16, then widened to fp32 and scaled: once for all planes where the
// group's grid is uniform (the 2^b plane weights ride in vpmaddubsw), once per plane otherwise.
// Each weight group then multiplies by alpha and adds offset x (exact fp32) group sum.
//
// Memory: the bit-planes of a thread's panels are a few long sequential streams; the scales of a
// chunk of panels are gathered first (lut_scale_chunk.h). No software prefetch of the plane
// streams: 1-4 KiB ahead measured slower.
#include <immintrin.h>

#include <algorithm>

#include "common/bits_dispatch.h"
#include "cpu/lut_gemm/lut_gemm.h"
#include "cpu/lut_gemm/lut_scale_chunk.h"

// Only this file's own functions get the ISA: every header is included above, so no inline or
// template function from a header is compiled for it (and then shared with other files).
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace torch_lowbit {
namespace cpu {
namespace {

// 16 consecutive scales (fp16 or fp32 as stored) of rows n0.. as two 8-float halves; rows past
// `rows` read as 0 (the last panel of a layer whose N is not a multiple of 16).
inline void load_scales16(const BcqWeight& w, const void* base, int64_t rows, __m256* out) {
  if (rows == kPanelRows) {
    if (w.half) {
      const __m256i h = _mm256_loadu_si256(static_cast<const __m256i*>(base));
      out[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
      out[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1));
    } else {
      out[0] = _mm256_loadu_ps(static_cast<const float*>(base));
      out[1] = _mm256_loadu_ps(static_cast<const float*>(base) + 8);
    }
    return;
  }
  alignas(32) float buf[kPanelRows] = {};
  for (int64_t r = 0; r < rows; ++r) buf[r] = w.scale_at(base, r);
  out[0] = _mm256_load_ps(buf);
  out[1] = _mm256_load_ps(buf + 8);
}

// rows 0-7 | rows 8-15 as int16 from two accumulators whose lanes hold even and odd columns.
inline void widen_block(__m256i acc_lo, __m256i acc_hi, __m256 scale, __m256* sum) {
  const __m256i rows = _mm256_add_epi16(_mm256_permute2x128_si256(acc_lo, acc_hi, 0x20),
                                        _mm256_permute2x128_si256(acc_lo, acc_hi, 0x31));
  const __m256i r0 = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(rows));
  const __m256i r1 = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(rows, 1));
  sum[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r0), scale, sum[0]);
  sum[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r1), scale, sum[1]);
}

// The low and high nibbles of one 32-byte weight load: table indices of its byte-column pair.
struct Nibbles {
  __m256i lo, hi;
  Nibbles(const uint8_t* src, __m256i mask) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    lo = _mm256_and_si256(v, mask);
    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
  }
};

// Looks nibbles up in the column pair's two tables and adds them per row into acc (int16, lanes
// = even / odd column), each row's two lookups weighted by `mult` (u8: 1, or 2^b where planes
// are combined in integers).
inline void lookup_add(__m256i tlo, __m256i thi, const Nibbles& x, __m256i mult, __m256i& acc_lo,
                       __m256i& acc_hi) {
  const __m256i rl = _mm256_shuffle_epi8(tlo, x.lo), rh = _mm256_shuffle_epi8(thi, x.hi);
  acc_lo = _mm256_add_epi16(acc_lo, _mm256_maddubs_epi16(mult, _mm256_unpacklo_epi8(rl, rh)));
  acc_hi = _mm256_add_epi16(acc_hi, _mm256_maddubs_epi16(mult, _mm256_unpackhi_epi8(rl, rh)));
}

inline __m256i load_table(const int8_t* t) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t)); }

// A uniform grid (what rtn / mse produce): alpha_b = alpha_0 * 2^b for every plane and row of the
// group, so sum_b alpha_b s_b = alpha_0 * sum_b 2^b s_b and the planes can be summed in int16
// (vpmaddubsw by 2^b) with one widening per table block for all of them. Exact compare: fp16
// and fp32 scales scale by powers of two without rounding.
template <int BITS>
bool uniform_group(const BcqWeight& w, int64_t g, int64_t n0, int64_t rows, __m256* alpha0) {
  load_scales16(w, w.alpha_ptr(0, g, n0), rows, alpha0);
  for (int b = 1; b < BITS; ++b) {
    __m256 a[2];
    load_scales16(w, w.alpha_ptr(b, g, n0), rows, a);
    const __m256 f = _mm256_set1_ps(static_cast<float>(1 << b));
    const __m256 eq = _mm256_and_ps(_mm256_cmp_ps(a[0], _mm256_mul_ps(alpha0[0], f), _CMP_EQ_OQ),
                                    _mm256_cmp_ps(a[1], _mm256_mul_ps(alpha0[1], f), _CMP_EQ_OQ));
    if (_mm256_movemask_ps(eq) != 0xff) return false;
  }
  return true;
}

// int16 range of one table block summed over planes: 127 per lookup x 4 lookups per column pair
// (two columns, two nibbles each) x pairs x (2^bits - 1). 6-bit (64008 at 2 pairs) does not fit:
// an all-ones 6-bit group under constant activations wrapped before this bound counted columns.
template <int BITS>
constexpr bool fits_int16(int64_t pairs_per_block) { return 4 * 127 * pairs_per_block * ((1 << BITS) - 1) <= 32767; }

// R activation rows (1 or 2) of one uniform group: sum[r] += the group's int16 plane sums
// (planes weighted 2^b) x table scale, per block. The rows share each plane load and its nibble
// extraction, so a second row costs 8 of the 11 instructions per 32-byte load.
template <int BITS, int R>
inline void uniform_rows(const uint8_t* src, int64_t plane_stride, const int8_t* const* t,
                         const float* const* ts, int64_t blocks, int64_t pairs, __m256 (*sum)[2]) {
  const __m256i nibble = _mm256_set1_epi8(0x0f);
  for (int64_t blk = 0; blk < blocks; ++blk) {
    __m256i acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int64_t q = 0; q < pairs; ++q, src += 2 * kPanelRows) {
      const int64_t toff = blk * kLutInt8BlockBytes + q * 32;
      __m256i tlo[R], thi[R];
      for (int r = 0; r < R; ++r) {
        tlo[r] = load_table(t[r] + toff);
        thi[r] = load_table(t[r] + toff + 64);
      }
      for (int b = 0; b < BITS; ++b) {
        const Nibbles x(src + b * plane_stride, nibble);
        const __m256i mult = _mm256_set1_epi8(static_cast<char>(1 << b));
        for (int r = 0; r < R; ++r) lookup_add(tlo[r], thi[r], x, mult, acc[r][0], acc[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) widen_block(acc[r][0], acc[r][1], _mm256_set1_ps(ts[r][blk]), sum[r]);
  }
}

// Where the tables of one activation row start and how a group's blocks divide them.
struct TableLayout {
  int64_t table_stride, scale_stride, blocks_per_group, pairs_per_block;
};

// Activation rows m..m+R-1 of a uniform group (tables from byte t0, table scales from ts0):
// out[m + r] += alpha0 x the group's summed planes.
template <int BITS, int R>
inline void uniform_group_rows(const int8_t* tables, const float* table_scales, int64_t m, int64_t t0,
                               int64_t ts0, const uint8_t* src0, int64_t plane_stride,
                               const TableLayout& l, const __m256* alpha0, __m256 (*out)[2]) {
  const int8_t* t[R];
  const float* ts[R];
  for (int r = 0; r < R; ++r) {
    t[r] = tables + (m + r) * l.table_stride + t0;
    ts[r] = table_scales + (m + r) * l.scale_stride + ts0;
  }
  __m256 sum[R][2] = {};
  uniform_rows<BITS, R>(src0, plane_stride, t, ts, l.blocks_per_group, l.pairs_per_block, sum);
  for (int r = 0; r < R; ++r) {
    out[m + r][0] = _mm256_fmadd_ps(alpha0[0], sum[r][0], out[m + r][0]);
    out[m + r][1] = _mm256_fmadd_ps(alpha0[1], sum[r][1], out[m + r][1]);
  }
}

// Panel p of w for M <= kLutRowsPerBlock activation rows; its scales come from `sc` (a BcqWeight
// whose alpha / offset / N describe the gathered chunk, see ScaleChunk) at row sn0. Groups are
// the outer loop, so a group's scales are loaded and its grid checked once for all rows, and
// uniform groups run two rows per pass over the planes.
template <int BITS>
void panel(const int8_t* tables, const float* table_scales, const float* group_sums, int64_t M,
           const BcqWeight& w, int64_t p, const BcqWeight& sc, int64_t sn0, float* y) {
  const int64_t n0 = p * kPanelRows;
  const int64_t rows = std::min<int64_t>(kPanelRows, w.N - n0);
  const int64_t ng = w.ngroups(), G = w.group_size, block = lut_int8_block(G);
  const int64_t pairs_per_block = block / 16, blocks_per_group = G / block;
  const int64_t table_stride = lut_int8_table_bytes(w.Kp), scale_stride = w.Kp / block;
  const int64_t plane_stride = w.panel_offset(1, 0, 0);  // bytes from one plane to the next
  const bool int16_ok = fits_int16<BITS>(pairs_per_block);
  const __m256i ones = _mm256_set1_epi8(1), nibble = _mm256_set1_epi8(0x0f);
  const TableLayout layout{table_stride, scale_stride, blocks_per_group, pairs_per_block};
  __m256 out[kLutRowsPerBlock][2];
  for (int64_t m = 0; m < M; ++m) out[m][0] = out[m][1] = _mm256_setzero_ps();
  for (int64_t g = 0; g < ng; ++g) {
    const uint8_t* src0 = w.planes + w.panel_offset(0, p, g * G / 8);
    const int64_t t0 = (g * G / block) * kLutInt8BlockBytes, ts0 = g * blocks_per_group;
    __m256 alpha0[2];
    if (int16_ok && uniform_group<BITS>(sc, g, sn0, rows, alpha0)) {
      int64_t m = 0;
      for (; m + 2 <= M; m += 2)
        uniform_group_rows<BITS, 2>(tables, table_scales, m, t0, ts0, src0, plane_stride, layout, alpha0, out);
      if (m < M)
        uniform_group_rows<BITS, 1>(tables, table_scales, m, t0, ts0, src0, plane_stride, layout, alpha0, out);
    } else {
      // Free alphas (bcq, gptq's bcq grid): each plane widened on its own, two planes per pass
      // so that they share the table loads.
      for (int b0 = 0; b0 < BITS; b0 += 2) {
        const int nb = BITS - b0 >= 2 ? 2 : 1;
        __m256 alpha[2][2];
        for (int j = 0; j < nb; ++j) load_scales16(sc, sc.alpha_ptr(b0 + j, g, sn0), rows, alpha[j]);
        for (int64_t m = 0; m < M; ++m) {
          __m256 sum[2][2] = {};
          const uint8_t* src = src0 + b0 * plane_stride;
          const int8_t* t = tables + m * table_stride + t0;
          const float* ts = table_scales + m * scale_stride + ts0;
          for (int64_t blk = 0; blk < blocks_per_group; ++blk) {
            __m256i acc[2][2] = {};
            for (int64_t q = 0; q < pairs_per_block; ++q, src += 2 * kPanelRows) {
              const __m256i tlo = load_table(t + blk * kLutInt8BlockBytes + q * 32);
              const __m256i thi = load_table(t + blk * kLutInt8BlockBytes + q * 32 + 64);
              lookup_add(tlo, thi, Nibbles(src, nibble), ones, acc[0][0], acc[0][1]);
              if (nb == 2) lookup_add(tlo, thi, Nibbles(src + plane_stride, nibble), ones, acc[1][0], acc[1][1]);
            }
            const __m256 scale = _mm256_set1_ps(ts[blk]);
            for (int j = 0; j < nb; ++j) widen_block(acc[j][0], acc[j][1], scale, sum[j]);
          }
          for (int j = 0; j < nb; ++j) {
            out[m][0] = _mm256_fmadd_ps(alpha[j][0], sum[j][0], out[m][0]);
            out[m][1] = _mm256_fmadd_ps(alpha[j][1], sum[j][1], out[m][1]);
          }
        }
      }
    }
    __m256 offset[2];
    load_scales16(sc, sc.offset_ptr(g, sn0), rows, offset);
    for (int64_t m = 0; m < M; ++m) {
      const __m256 gs = _mm256_set1_ps(group_sums[m * ng + g]);
      out[m][0] = _mm256_fmadd_ps(offset[0], gs, out[m][0]);
      out[m][1] = _mm256_fmadd_ps(offset[1], gs, out[m][1]);
    }
  }
  for (int64_t m = 0; m < M; ++m) {
    float* dst = y + m * w.N + n0;
    if (rows == kPanelRows) {
      _mm256_storeu_ps(dst, out[m][0]);
      _mm256_storeu_ps(dst + 8, out[m][1]);
    } else {
      alignas(32) float buf[kPanelRows];
      _mm256_store_ps(buf, out[m][0]);
      _mm256_store_ps(buf + 8, out[m][1]);
      std::copy(buf, buf + rows, dst);
    }
  }
}

}  // namespace

void lut_gemm_panels_int8_avx2(const int8_t* tables, const float* table_scales,
                               const float* group_sums, int64_t M, const BcqWeight& w, int64_t p0,
                               int64_t p1, float* y) {
  with_bits(w.bits, [&](auto bits) {
    for_each_panel_with_scales(w, p0, p1, [&](int64_t p, const BcqWeight& sc, int64_t sn0) {
      panel<decltype(bits)::value>(tables, table_scales, group_sums, M, w, p, sc, sn0, y);
    });
  });
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
