// LUT-GEMM with int8 tables, AVX-512 with VBMI and VNNI (Ice Lake and later, Sapphire Rapids, AMD
// Zen 4 / Zen 5): `vpermb` looks a block's 4 columns up in one 64-byte table, `vpdpbusd` sums
// each row's 4 lookups straight into int32.
//
// One 64-byte load of a plane holds the 4 byte columns of a table block (32 activations) for a
// 16-row panel, column-major (byte 16 c + r). One `vpermb` transposes it to row-major (byte
// 4 r + c), and each nibble is tagged with its column (c * 16 + nibble, one vpternlogd): the
// block's low-nibble tables are 64 bytes, column c at 16 c (lut_gemm.h), so a second `vpermb`
// with those indices gives every row's 4 column lookups side by side, and `vpdpbusd` (by 1, or by
// 2^b where a uniform grid sums its planes in integers) adds them into that row's int32. Against
// the vpshufb scheme (lut_gemm_int8_avx512.cpp) this drops the unpacks, the int16 range limit
// (uniform grids sum their planes in integers at every bit width) and the per-block cross-lane
// reduction: a block widens with one convert and one FMA.
#include <immintrin.h>

#include <algorithm>

#include "common/bcq_format.h"
#include "common/bits_dispatch.h"
#include "cpu/lut_gemm/lut_gemm.h"
#include "cpu/lut_gemm/lut_scale_chunk.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni,fma,f16c")

namespace torch_lowbit {
namespace cpu {
namespace {

struct Lookup {
  __m512i transpose, column, nibble;

  Lookup() : column(_mm512_set1_epi32(0x30201000)), nibble(_mm512_set1_epi8(0x0f)) {
    alignas(64) uint8_t idx[64];
    for (int r = 0; r < kPanelRows; ++r)
      for (int c = 0; c < 4; ++c) idx[4 * r + c] = static_cast<uint8_t>(c * kPanelRows + r);
    transpose = _mm512_load_si512(idx);
  }

  // Row-major, column-tagged table indices of one 64-byte plane load: (nibble & 15) | 16 c.
  struct Indices {
    __m512i lo, hi;
  };
  Indices load(const uint8_t* src) const {
    const __m512i v = _mm512_permutexvar_epi8(transpose, _mm512_loadu_si512(src));
    return {_mm512_ternarylogic_epi32(v, nibble, column, 0xEA),  // (a & b) | c
            _mm512_ternarylogic_epi32(_mm512_srli_epi16(v, 4), nibble, column, 0xEA)};
  }

  // acc_lo, acc_hi (int32 per row) += the low- and high-nibble lookups of the row's 4 columns.
  static void add(__m512i tlo, __m512i thi, const Indices& x, __m512i mult, __m512i& acc_lo, __m512i& acc_hi) {
    acc_lo = _mm512_dpbusd_epi32(acc_lo, mult, _mm512_permutexvar_epi8(x.lo, tlo));
    acc_hi = _mm512_dpbusd_epi32(acc_hi, mult, _mm512_permutexvar_epi8(x.hi, thi));
  }

  static void widen(__m512i acc_lo, __m512i acc_hi, __m512 scale, __m512& sum) {
    sum = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc_lo, acc_hi)), scale, sum);
  }

  // int32: 8 x 127 x 255 at 8 bits.
  static constexpr bool sums_fit(int) { return true; }
};

}  // namespace
}  // namespace cpu
}  // namespace torch_lowbit

#include "cpu/lut_gemm/lut_int8_avx512_panel.h"

namespace torch_lowbit {
namespace cpu {

void lut_gemm_panels_int8_avx512vnni(const int8_t* tables, const float* table_scales,
                                     const float* group_sums, int64_t M, const BcqWeight& w, int64_t p0,
                                     int64_t p1, float* y) {
  int8_panels(tables, table_scales, group_sums, M, w, p0, p1, y);
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
