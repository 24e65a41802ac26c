// LUT-GEMM with int8 tables, AVX-512 F + BW without VBMI / VNNI (Skylake-X, Cascade Lake): the
// AVX2 kernel's scheme on 64-byte vectors. CPUs with VBMI and VNNI run lut_gemm_int8_avx512vnni.cpp.
//
// One 64-byte load of a plane gives the 4 byte columns of a table block (32 activations) for a
// 16-row panel, column c in 128-bit lane c. Its low nibbles index the low-nibble tables of the 4
// columns (one 64-byte table load, lane c = column c: the layout in lut_gemm.h), its high nibbles
// the next 64 bytes; `vpshufb` looks up within each lane, 64 lookups an instruction. Interleaving
// the two results per row and one `vpmaddubsw` (by 1, or by 2^b where a uniform grid sums its
// planes in integers) sums them into int16 per row and column. Once per block the 4 columns are
// added across lanes (int16), widened to fp32 and multiplied by the table scale; each weight group
// then multiplies by alpha and adds offset x (exact fp32) group sum (lut_int8_avx512_panel.h).
#include <immintrin.h>

#include <algorithm>

#include "common/bcq_format.h"
#include "common/bits_dispatch.h"
#include "cpu/lut_gemm/lut_gemm.h"
#include "cpu/lut_gemm/lut_scale_chunk.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")

namespace torch_lowbit {
namespace cpu {
namespace {

struct Lookup {
  // The low and high nibbles of one 64-byte plane load.
  struct Indices {
    __m512i lo, hi;
  };
  Indices load(const uint8_t* src) const {
    const __m512i v = _mm512_loadu_si512(src), mask = _mm512_set1_epi8(0x0f);
    return {_mm512_and_si512(v, mask), _mm512_and_si512(_mm512_srli_epi16(v, 4), mask)};
  }

  // acc_lo (rows 0-7) and acc_hi (rows 8-15), int16 per row in each column's lane.
  static void add(__m512i tlo, __m512i thi, const Indices& x, __m512i mult, __m512i& acc_lo, __m512i& acc_hi) {
    const __m512i rl = _mm512_shuffle_epi8(tlo, x.lo), rh = _mm512_shuffle_epi8(thi, x.hi);
    acc_lo = _mm512_add_epi16(acc_lo, _mm512_maddubs_epi16(mult, _mm512_unpacklo_epi8(rl, rh)));
    acc_hi = _mm512_add_epi16(acc_hi, _mm512_maddubs_epi16(mult, _mm512_unpackhi_epi8(rl, rh)));
  }

  // The 4 column lanes added in int16: [lo0 + lo2, lo1 + lo3, hi0 + hi2, hi1 + hi3], then lanes 0
  // and 2 + lanes 1 and 3, widened.
  static void widen(__m512i acc_lo, __m512i acc_hi, __m512 scale, __m512& sum) {
    const __m512i s = _mm512_add_epi16(_mm512_shuffle_i64x2(acc_lo, acc_hi, _MM_SHUFFLE(1, 0, 1, 0)),
                                       _mm512_shuffle_i64x2(acc_lo, acc_hi, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m512i t = _mm512_add_epi16(s, _mm512_shuffle_i64x2(s, s, _MM_SHUFFLE(2, 3, 0, 1)));
    const __m256i rows = _mm512_castsi512_si256(_mm512_shuffle_i64x2(t, t, _MM_SHUFFLE(2, 0, 2, 0)));
    sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(rows)), scale, sum);
  }

  // int16 range of a block summed over planes: 127 per lookup x 8 lookups (4 columns, 2 nibbles)
  // x (2^bits - 1): up to 5 bits.
  static constexpr bool sums_fit(int bits) { return 8 * 127 * ((1 << bits) - 1) <= 32767; }
};

}  // namespace
}  // namespace cpu
}  // namespace torch_lowbit

#include "cpu/lut_gemm/lut_int8_avx512_panel.h"

namespace torch_lowbit {
namespace cpu {

void lut_gemm_panels_int8_avx512(const int8_t* tables, const float* table_scales,
                                 const float* group_sums, int64_t M, const BcqWeight& w, int64_t p0,
                                 int64_t p1, float* y) {
  int8_panels(tables, table_scales, group_sums, M, w, p0, p1, y);
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
