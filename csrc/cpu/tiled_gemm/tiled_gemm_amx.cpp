// Low-bit tiled GEMM on AMX (bf16 activations): y[:, n0:n1) = x @ W^T, fp32 accumulation.
//
// The bit-planes of 64 output rows are expanded once per call into bf16 in AMX's VNNI layout
// (k pairs interleaved: B[k/2][n][2]) for the whole K (64 x Kp x 2 bytes: 512 KiB at K = 4096,
// inside the L2), then every block of 32 activation rows runs a 2 x 2 grid of 16 x 16 fp32
// accumulator tiles over it with tdpbf16ps (32 k per instruction). x arrives padded to a
// multiple of 32 rows and Kp columns with zeros, so the tile loads never read past it.
// The expansion is the AVX-512 one (base + masked adds of 2 * alpha) with a bf16 convert and an
// interleave per pair of k.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "common/bits_dispatch.h"
#include "cpu/tiled_gemm/tiled_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16")
#include "cpu/microkernels/avx512_scales.h"

namespace torch_lowbit {
namespace cpu {
namespace {

struct TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// Tiles 0-3: C (16 x 16 fp32), 4-5: A (16 rows x 32 bf16), 6-7: B (16 k-pairs x 16 cols x 2).
void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  _tile_loadconfig(&cfg);
}


// Panel p (16 rows) for k in [0, Kp) into dst[(k / 2) * ld + 2 * j + k % 2] (bf16 bits); ld is
// the row length of the strip in bf16 elements (2 x its columns).
template <int BITS>
void expand_panel_vnni(const BcqWeight& w, int64_t p, uint16_t* dst, int64_t ld) {
  const int64_t n0 = p * kPanelRows;
  // rows past N load zero scales, so they expand to exactly 0
  const __mmask16 live = live_mask(w.N - n0);
  // interleave two 16 x bf16 halves: out[2j] = lo[j], out[2j + 1] = hi[j]
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  for (int64_t g = 0; g < w.ngroups(); ++g) {
    __m512 twice_alpha[BITS];
    const __m512 base = group_scales<BITS>(w, g, n0, live, twice_alpha);
    for (int64_t k = g * w.group_size; k < (g + 1) * w.group_size; k += 8) {
      __m128i bytes[BITS];
#pragma GCC unroll 8
      for (int b = 0; b < BITS; ++b)
        bytes[b] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.planes + w.panel_offset(b, p, k / 8)));
#pragma GCC unroll 4
      for (int t = 0; t < 8; t += 2) {
        __m512 v0 = base, v1 = base;
        const __m128i bit0 = _mm_set1_epi8(static_cast<char>(1 << t));
        const __m128i bit1 = _mm_set1_epi8(static_cast<char>(2 << t));
#pragma GCC unroll 8
        for (int b = 0; b < BITS; ++b) {
          v0 = _mm512_mask_add_ps(v0, _mm_test_epi8_mask(bytes[b], bit0), v0, twice_alpha[b]);
          v1 = _mm512_mask_add_ps(v1, _mm_test_epi8_mask(bytes[b], bit1), v1, twice_alpha[b]);
        }
        const __m512i pair = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(v1, v0));
        _mm512_storeu_si512(dst + ((k + t) / 2) * ld, _mm512_permutexvar_epi16(interleave, pair));
      }
    }
  }
}

}  // namespace

void tiled_gemm_bcq_amx_tile(const uint16_t* x, int64_t M_padded, const BcqWeight& w, int64_t n0,
                             int64_t n1, float* y, int64_t M, uint16_t* scratch) {
  constexpr int64_t kCols = 2 * kPanelRows;  // one strip = two B tiles
  const int64_t Kp = w.Kp, ld = 2 * kCols;   // strip row: 32 columns x a k pair
  const int64_t strips = (n1 - n0 + kCols - 1) / kCols;
  for (int64_t s = 0; s < strips; ++s) {
    uint16_t* strip = scratch + s * (Kp / 2) * ld;
    for (int half = 0; half < 2; ++half) {
      const int64_t p = (n0 + s * kCols) / kPanelRows + half;
      if (p < w.panels()) {
        with_bits(w.bits, [&](auto bits) {
          expand_panel_vnni<decltype(bits)::value>(w, p, strip + half * 2 * kPanelRows, ld);
        });
      } else {
        for (int64_t r = 0; r < Kp / 2; ++r) std::memset(strip + r * ld + half * 2 * kPanelRows, 0, 2 * kPanelRows * 2);
      }
    }
  }
  configure_tiles();
  alignas(64) float c[4][16 * 16];
  const int64_t x_stride = Kp * 2, b_stride = ld * 2;  // bytes
  for (int64_t m0 = 0; m0 < M_padded; m0 += 32) {
    const uint16_t* a0 = x + m0 * Kp;
    const uint16_t* a1 = a0 + 16 * Kp;
    for (int64_t s = 0; s < strips; ++s) {
      const uint16_t* strip = scratch + s * (Kp / 2) * ld;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t k = 0; k < Kp; k += 32) {
        _tile_loadd(4, a0 + k, x_stride);
        _tile_loadd(5, a1 + k, x_stride);
        _tile_loadd(6, strip + (k / 2) * ld, b_stride);
        _tile_loadd(7, strip + (k / 2) * ld + 2 * kPanelRows, b_stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      _tile_stored(0, c[0], 64);
      _tile_stored(1, c[1], 64);
      _tile_stored(2, c[2], 64);
      _tile_stored(3, c[3], 64);
      for (int t = 0; t < 4; ++t) {
        const int64_t col0 = n0 + s * kCols + (t % 2) * 16, row0 = m0 + (t / 2) * 16;
        const int64_t cols = std::min<int64_t>(16, n1 - col0);
        if (cols <= 0) continue;
        const __mmask16 mask = cols >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << cols) - 1u);
        for (int64_t i = 0; i < 16 && row0 + i < M; ++i)
          _mm512_mask_storeu_ps(y + (row0 + i) * w.N + col0, mask, _mm512_load_ps(c[t] + i * 16));
      }
    }
  }
  _tile_release();
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
