// The int8-activation GEMM strip on AVX-512 VNNI (Ice Lake and later, Sapphire Rapids, AMD
// Zen 4 / Zen 5): 32 weight rows as u8 codes, [Kp / 4][32][4] (one zmm = 16 rows x 4 k, the
// operand layout of vpdpbusd), and every 6 rows of x over them with 12 int32 and 12 fp32
// accumulators in registers for the whole K.
#include <immintrin.h>

#include <algorithm>

#include "common/bcq_format.h"
#include "cpu/int8_gemm/int8_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma,f16c")

#include "cpu/microkernels/avx512_scales.h"

namespace torch_lowbit {
namespace cpu {
namespace {

constexpr int64_t kCols = kInt8StripColsAvx512;
constexpr int kRows = 6;

using Strip = Int8Strip;

// The codes of rows n0 .. n0 + 31 (zero past N: those panels' bytes are zero or absent). Per
// 16-row panel and byte column c (k = 8c .. 8c+7), each plane's 16 bytes are spread so that
// byte 4j + t of a zmm holds row j's byte, then bit t (quad 2c) or bit 4 + t (quad 2c + 1)
// is tested into a mask that adds 2^b.
void expand_codes(const BcqWeight& w, int64_t n0, uint8_t* codes) {
  alignas(64) uint8_t spread_idx[64], bit_lo[64], bit_hi[64];
  for (int i = 0; i < 64; ++i) {
    spread_idx[i] = static_cast<uint8_t>(i / 4);  // each 128-bit lane holds the 16 bytes; rows 4L..4L+3 in lane L
    bit_lo[i] = static_cast<uint8_t>(1u << (i % 4));
    bit_hi[i] = static_cast<uint8_t>(16u << (i % 4));
  }
  const __m512i spread = _mm512_load_si512(spread_idx), lo_bits = _mm512_load_si512(bit_lo),
                hi_bits = _mm512_load_si512(bit_hi);
  const int64_t cols8 = w.row_bytes();
  for (int half = 0; half < 2; ++half) {
    const int64_t p = n0 / kPanelRows + half;
    uint8_t* dst = codes + half * 64;
    if (p >= w.panels()) {
      for (int64_t q = 0; q < 2 * cols8; ++q) _mm512_storeu_si512(dst + q * kCols * 4, _mm512_setzero_si512());
      continue;
    }
    for (int64_t c = 0; c < cols8; ++c) {
      __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
      for (int64_t b = 0; b < w.bits; ++b) {
        const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.planes + w.panel_offset(b, p, c)));
        const __m512i v = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(bytes), spread);
        const __m512i add = _mm512_set1_epi8(static_cast<char>(1u << b));
        lo = _mm512_or_si512(lo, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(v, lo_bits), add));
        hi = _mm512_or_si512(hi, _mm512_maskz_mov_epi8(_mm512_test_epi8_mask(v, hi_bits), add));
      }
      _mm512_storeu_si512(dst + (2 * c) * kCols * 4, lo);
      _mm512_storeu_si512(dst + (2 * c + 1) * kCols * 4, hi);
    }
  }
}

// step = 2 alpha_0, low = offset - alpha_0 (2^bits - 1) per group of the strip's rows (lanes
// past N zero).
void expand_scales(const BcqWeight& w, int64_t n0, const Strip& s) {
  const float levels = static_cast<float>((1 << w.bits) - 1);
  for (int64_t g = 0; g < w.ngroups(); ++g)
    for (int half = 0; half < 2; ++half) {
      const int64_t n = n0 + 16 * half;
      const __mmask16 live = live_mask(w.N - n);
      const __m512 a0 = load_scales(w.alpha_ptr(0, g, n), w.half, live);
      const __m512 off = load_scales(w.offset_ptr(g, n), w.half, live);
      _mm512_storeu_ps(s.step + g * kCols + 16 * half, _mm512_add_ps(a0, a0));
      _mm512_storeu_ps(s.low + g * kCols + 16 * half, _mm512_fnmadd_ps(a0, _mm512_set1_ps(levels), off));
    }
}

// Rows m0 .. m0 + R - 1 of y[:, n0 : n0 + 32).
template <int R>
void rows_kernel(const Int8Activations& a, const BcqWeight& w, const Strip& s, int64_t m0, int64_t n0,
                 float* y) {
  __m512 f[R][2];
  for (int r = 0; r < R; ++r) f[r][0] = f[r][1] = _mm512_setzero_ps();
  const int64_t blocks_per_group = w.group_size / kInt8Block, sblocks = a.Kp / kInt8Block;
  const int8_t* xq[R];
  const float* xs[R];
  for (int r = 0; r < R; ++r) {
    xq[r] = a.q + (m0 + r) * a.Kp;
    xs[r] = a.scale + (m0 + r) * sblocks;
  }
  for (int64_t g = 0; g < w.ngroups(); ++g) {
    const __m512 step0 = _mm512_loadu_ps(s.step + g * kCols), step1 = _mm512_loadu_ps(s.step + g * kCols + 16);
    for (int64_t j = g * blocks_per_group; j < (g + 1) * blocks_per_group; ++j) {
      __m512i acc[R][2];
      for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_si512();
      const uint8_t* wq = s.codes + j * (kInt8Block / 4) * kCols * 4;
#pragma GCC unroll 8
      for (int64_t q = 0; q < kInt8Block / 4; ++q) {
        const __m512i w0 = _mm512_loadu_si512(wq + q * kCols * 4), w1 = _mm512_loadu_si512(wq + q * kCols * 4 + 64);
        for (int r = 0; r < R; ++r) {
          int32_t four;
          __builtin_memcpy(&four, xq[r] + j * kInt8Block + 4 * q, 4);
          const __m512i xb = _mm512_set1_epi32(four);
          acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], w0, xb);
          acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], w1, xb);
        }
      }
      for (int r = 0; r < R; ++r) {
        const __m512 sx = _mm512_set1_ps(xs[r][j]);
        f[r][0] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][0]), _mm512_mul_ps(step0, sx), f[r][0]);
        f[r][1] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r][1]), _mm512_mul_ps(step1, sx), f[r][1]);
      }
    }
    const __m512 low0 = _mm512_loadu_ps(s.low + g * kCols), low1 = _mm512_loadu_ps(s.low + g * kCols + 16);
    for (int r = 0; r < R; ++r) {
      const __m512 sum = _mm512_set1_ps(a.group_sum[(m0 + r) * a.ngroups + g]);
      f[r][0] = _mm512_fmadd_ps(low0, sum, f[r][0]);
      f[r][1] = _mm512_fmadd_ps(low1, sum, f[r][1]);
    }
  }
  const __mmask16 live0 = live_mask(w.N - n0), live1 = live_mask(w.N - n0 - 16);
  for (int r = 0; r < R; ++r) {
    float* out = y + (m0 + r) * w.N + n0;
    _mm512_mask_storeu_ps(out, live0, f[r][0]);
    _mm512_mask_storeu_ps(out + 16, live1, f[r][1]);
  }
}

}  // namespace

void int8_gemm_strip_avx512vnni(const Int8Activations& a, const BcqWeight& w, int64_t n0, float* y,
                                uint8_t* scratch) {
  const Strip s = int8_strip(w, kCols, scratch);
  expand_codes(w, n0, s.codes);
  expand_scales(w, n0, s);
  int64_t m = 0;
  for (; m + kRows <= a.M; m += kRows) rows_kernel<kRows>(a, w, s, m, n0, y);
  switch (a.M - m) {
    case 5: rows_kernel<5>(a, w, s, m, n0, y); break;
    case 4: rows_kernel<4>(a, w, s, m, n0, y); break;
    case 3: rows_kernel<3>(a, w, s, m, n0, y); break;
    case 2: rows_kernel<2>(a, w, s, m, n0, y); break;
    case 1: rows_kernel<1>(a, w, s, m, n0, y); break;
    default: break;
  }
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
