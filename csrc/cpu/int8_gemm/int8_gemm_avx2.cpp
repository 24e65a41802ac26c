// The int8-activation GEMM strip on AVX2 (every x86 CPU of the last decade; also what AVX-512
// CPUs without VNNI run): 16 weight rows as u8 codes, [Kp / 4][16][4], and every 4 rows of x over
// them. vpmaddubsw multiplies u8 codes by s8 activations into int16 pair sums (at most
// 2 x 127 x (2^bits - 1): 7 bits fit), vpmaddwd by 1 widens them to int32; per block of 32
// activations the int32 sums go to fp32 accumulators kept in memory (16 ymm registers hold the
// 8 int32 accumulators and the operands, not both accumulator sets). Also the activation
// quantizer and the uniform-grid check, which the AVX-512 path shares.
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "common/bcq_format.h"
#include "cpu/int8_gemm/int8_gemm.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

namespace torch_lowbit {
namespace cpu {
namespace {

constexpr int64_t kCols = kInt8StripColsAvx2;
constexpr int kRows = kInt8StripAccRows;

using Strip = Int8Strip;

// 8 scales of rows n.. (fp16 or fp32 as stored), zero past N.
__m256 load8(const BcqWeight& w, const void* src, int64_t live) {
  alignas(32) float tmp[8] = {};
  const int64_t n = std::clamp<int64_t>(live, 0, 8);
  if (n == 8) {
    if (w.half) return _mm256_cvtph_ps(_mm_loadu_si128(static_cast<const __m128i*>(src)));
    return _mm256_loadu_ps(static_cast<const float*>(src));
  }
  for (int64_t i = 0; i < n; ++i) tmp[i] = w.half ? half_to_float(static_cast<const uint16_t*>(src)[i]) : static_cast<const float*>(src)[i];
  return _mm256_load_ps(tmp);
}

// Codes of the 16 rows of panel n0 / 16: per byte column c and plane, the 16 bytes are spread
// so that byte 4j + t of the two ymm (rows 0-7, rows 8-15) holds row j's byte, and bit t (quad
// 2c) or 4 + t (quad 2c + 1) adds 2^b.
void expand_codes(const BcqWeight& w, int64_t n0, uint8_t* codes) {
  alignas(32) uint8_t idx_a[32], idx_b[32], bit_lo[32], bit_hi[32];
  for (int i = 0; i < 32; ++i) {
    idx_a[i] = static_cast<uint8_t>(i / 4);      // rows 0-7 (vpshufb indexes its own 128-bit lane: the
    idx_b[i] = static_cast<uint8_t>(8 + i / 4);  // 16 bytes are in both)
    bit_lo[i] = static_cast<uint8_t>(1u << (i % 4));
    bit_hi[i] = static_cast<uint8_t>(16u << (i % 4));
  }
  const __m256i ia = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx_a)),
                ib = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx_b)),
                lo_bits = _mm256_load_si256(reinterpret_cast<const __m256i*>(bit_lo)),
                hi_bits = _mm256_load_si256(reinterpret_cast<const __m256i*>(bit_hi));
  const int64_t p = n0 / kPanelRows;
  for (int64_t c = 0; c < w.row_bytes(); ++c) {
    __m256i lo_a = _mm256_setzero_si256(), lo_b = lo_a, hi_a = lo_a, hi_b = lo_a;
    for (int64_t b = 0; b < w.bits; ++b) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w.planes + w.panel_offset(b, p, c)));
      const __m256i both = _mm256_broadcastsi128_si256(bytes);
      const __m256i va = _mm256_shuffle_epi8(both, ia), vb = _mm256_shuffle_epi8(both, ib);
      const __m256i add = _mm256_set1_epi8(static_cast<char>(1u << b));
      const auto bit = [&](__m256i v, __m256i sel) { return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, sel), sel), add); };
      lo_a = _mm256_or_si256(lo_a, bit(va, lo_bits));
      lo_b = _mm256_or_si256(lo_b, bit(vb, lo_bits));
      hi_a = _mm256_or_si256(hi_a, bit(va, hi_bits));
      hi_b = _mm256_or_si256(hi_b, bit(vb, hi_bits));
    }
    uint8_t* q0 = codes + (2 * c) * kCols * 4;
    uint8_t* q1 = q0 + kCols * 4;
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q0), lo_a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q0 + 32), lo_b);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q1), hi_a);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(q1 + 32), hi_b);
  }
}

void expand_scales(const BcqWeight& w, int64_t n0, const Strip& s) {
  const __m256 levels = _mm256_set1_ps(static_cast<float>((1 << w.bits) - 1));
  for (int64_t g = 0; g < w.ngroups(); ++g)
    for (int half = 0; half < 2; ++half) {
      const int64_t n = n0 + 8 * half;
      const __m256 a0 = load8(w, w.alpha_ptr(0, g, std::min(n, w.N - 1)), w.N - n);
      const __m256 off = load8(w, w.offset_ptr(g, std::min(n, w.N - 1)), w.N - n);
      _mm256_storeu_ps(s.step + g * kCols + 8 * half, _mm256_add_ps(a0, a0));
      _mm256_storeu_ps(s.low + g * kCols + 8 * half, _mm256_fnmadd_ps(a0, levels, off));
    }
}

// int16 pair sums of vpmaddubsw are added for RUN quads before one vpmaddwd widens them:
// RUN x 2 x 127 x (2^bits - 1) <= 32767 (8 quads up to 4 bits, 4 at 5, 2 at 6, 1 at 7).
constexpr int run_for_bits(int64_t bits) { return bits <= 4 ? 8 : bits == 5 ? 4 : bits == 6 ? 2 : 1; }

template <int R, int RUN>
void rows_kernel(const Int8Activations& a, const BcqWeight& w, const Strip& s, int64_t m0, int64_t n0,
                 float* y) {
  static_assert(kInt8Block / 4 % RUN == 0, "a block is whole runs");
  const __m256i ones = _mm256_set1_epi16(1);
  std::fill(s.acc, s.acc + kRows * kCols, 0.f);
  const int64_t blocks_per_group = w.group_size / kInt8Block, sblocks = a.Kp / kInt8Block;
  for (int64_t g = 0; g < w.ngroups(); ++g) {
    const __m256 step0 = _mm256_loadu_ps(s.step + g * kCols), step1 = _mm256_loadu_ps(s.step + g * kCols + 8);
    for (int64_t j = g * blocks_per_group; j < (g + 1) * blocks_per_group; ++j) {
      __m256i acc[R][2];
      if constexpr (RUN != kInt8Block / 4)
        for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
      const uint8_t* wq = s.codes + j * (kInt8Block / 4) * kCols * 4;
      for (int64_t q0 = 0; q0 < kInt8Block / 4; q0 += RUN) {
        __m256i p16[R][2];
        for (int r = 0; r < R; ++r) p16[r][0] = p16[r][1] = _mm256_setzero_si256();
#pragma GCC unroll 1
        for (int64_t q = q0; q < q0 + RUN; ++q) {  // unrolled, GCC schedules all 8 quads' products first and spills
          const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + q * kCols * 4));
          const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wq + q * kCols * 4 + 32));
          for (int r = 0; r < R; ++r) {
            int32_t four;
            __builtin_memcpy(&four, a.q + (m0 + r) * a.Kp + j * kInt8Block + 4 * q, 4);
            const __m256i xb = _mm256_set1_epi32(four);
            p16[r][0] = _mm256_add_epi16(p16[r][0], _mm256_maddubs_epi16(w0, xb));
            p16[r][1] = _mm256_add_epi16(p16[r][1], _mm256_maddubs_epi16(w1, xb));
          }
        }
        for (int r = 0; r < R; ++r) {
          // With one run per block the int32 sums start here: no zeroed accumulators held
          // across the run (R = 4 would need 19 of the 16 ymm registers).
          if constexpr (RUN == kInt8Block / 4) {
            acc[r][0] = _mm256_madd_epi16(p16[r][0], ones);
            acc[r][1] = _mm256_madd_epi16(p16[r][1], ones);
          } else {
            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(p16[r][0], ones));
            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(p16[r][1], ones));
          }
        }
      }
      for (int r = 0; r < R; ++r) {
        const __m256 sx = _mm256_set1_ps(a.scale[(m0 + r) * sblocks + j]);
        float* f = s.acc + r * kCols;
        _mm256_storeu_ps(f, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][0]), _mm256_mul_ps(step0, sx), _mm256_loadu_ps(f)));
        _mm256_storeu_ps(f + 8, _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[r][1]), _mm256_mul_ps(step1, sx), _mm256_loadu_ps(f + 8)));
      }
    }
    const __m256 low0 = _mm256_loadu_ps(s.low + g * kCols), low1 = _mm256_loadu_ps(s.low + g * kCols + 8);
    for (int r = 0; r < R; ++r) {
      const __m256 sum = _mm256_set1_ps(a.group_sum[(m0 + r) * a.ngroups + g]);
      float* f = s.acc + r * kCols;
      _mm256_storeu_ps(f, _mm256_fmadd_ps(low0, sum, _mm256_loadu_ps(f)));
      _mm256_storeu_ps(f + 8, _mm256_fmadd_ps(low1, sum, _mm256_loadu_ps(f + 8)));
    }
  }
  const int64_t cols = std::min(kCols, w.N - n0);
  for (int r = 0; r < R; ++r) std::copy(s.acc + r * kCols, s.acc + r * kCols + cols, y + (m0 + r) * w.N + n0);
}

template <int RUN>
void all_rows(const Int8Activations& a, const BcqWeight& w, const Strip& s, int64_t n0, float* y) {
  int64_t m = 0;
  for (; m + kRows <= a.M; m += kRows) rows_kernel<kRows, RUN>(a, w, s, m, n0, y);
  switch (a.M - m) {
    case 3: rows_kernel<3, RUN>(a, w, s, m, n0, y); break;
    case 2: rows_kernel<2, RUN>(a, w, s, m, n0, y); break;
    case 1: rows_kernel<1, RUN>(a, w, s, m, n0, y); break;
    default: break;
  }
}

}  // namespace

void int8_gemm_strip_avx2(const Int8Activations& a, const BcqWeight& w, int64_t n0, float* y,
                          uint8_t* scratch) {
  const Strip s = int8_strip(w, kCols, scratch);
  expand_codes(w, n0, s.codes);
  expand_scales(w, n0, s);
  switch (run_for_bits(w.bits)) {
    case 8: all_rows<8>(a, w, s, n0, y); break;
    case 4: all_rows<4>(a, w, s, n0, y); break;
    case 2: all_rows<2>(a, w, s, n0, y); break;
    default: all_rows<1>(a, w, s, n0, y); break;
  }
}

bool bcq_weight_uniform_avx2(const BcqWeight& w) {
  for (int64_t b = 1; b < w.bits; ++b) {
    const __m256 f = _mm256_set1_ps(static_cast<float>(1 << b));
    for (int64_t g = 0; g < w.ngroups(); ++g)
      for (int64_t n = 0; n < w.N; n += 8) {
        const int64_t live = w.N - n;
        const __m256 a0 = load8(w, w.alpha_ptr(0, g, n), live), ab = load8(w, w.alpha_ptr(b, g, n), live);
        if (_mm256_movemask_ps(_mm256_cmp_ps(ab, _mm256_mul_ps(a0, f), _CMP_EQ_OQ)) != 0xff) return false;
      }
  }
  return true;
}

void quantize_activations_int8_avx2(const float* x, int64_t M, int64_t K, int64_t Kp, int64_t G,
                                    int8_t* q, float* scale, float* group_sum) {
  const int64_t blocks = Kp / kInt8Block, ngroups = Kp / G;
  const __m256 sign = _mm256_set1_ps(-0.f);
  for (int64_t m = 0; m < M; ++m) {
    const float* row = x + m * K;
    int8_t* qrow = q + m * Kp;
    for (int64_t j = 0; j < blocks; ++j) {
      const int64_t k0 = j * kInt8Block, live = std::clamp<int64_t>(K - k0, 0, kInt8Block);
      alignas(32) float v[kInt8Block] = {};
      std::copy(row + k0, row + k0 + live, v);
      __m256 mx = _mm256_setzero_ps(), probe = _mm256_setzero_ps();
      for (int i = 0; i < kInt8Block; i += 8) {
        const __m256 vi = _mm256_load_ps(v + i);
        mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, vi));
        probe = _mm256_add_ps(probe, _mm256_mul_ps(vi, _mm256_setzero_ps()));  // NaN if any entry is NaN or inf
      }
      alignas(32) float lanes[8], probes[8];
      _mm256_store_ps(lanes, mx);
      _mm256_store_ps(probes, probe);
      const float amax = *std::max_element(lanes, lanes + 8);
      // A NaN or inf activation makes its rows' outputs NaN (max_ps would drop a NaN).
      const bool finite = std::none_of(probes, probes + 8, [](float p) { return std::isnan(p); });
      scale[m * blocks + j] = finite ? amax / 127.f : NAN;
      const __m256 inv = _mm256_set1_ps(amax > 0.f ? 127.f / amax : 0.f);
      for (int i = 0; i < kInt8Block; i += 8) {
        // round to nearest even; |x * 127 / amax| <= 127 up to rounding, so the pack saturating at 127 is exact
        const __m256i r = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_load_ps(v + i), inv));
        const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        const __m128i w8 = _mm_packs_epi16(w16, w16);
        _mm_storel_epi64(reinterpret_cast<__m128i*>(qrow + k0 + i), w8);
      }
    }
    // The offset term's sums are of the quantized activations, so that the GEMM is exactly
    // x_int8 @ W: with codes 0 .. 2^bits - 1 (not centred) the exact sums of x would leave the
    // codes' mean times the rounding errors' sum uncancelled (1.2% against 0.5% at 3 bits).
    const int64_t per_group = G / kInt8Block;
    for (int64_t g = 0; g < ngroups; ++g) {
      float sum = 0.f;
      for (int64_t j = g * per_group; j < (g + 1) * per_group; ++j) {
        int32_t isum = 0;
        for (int64_t k = j * kInt8Block; k < (j + 1) * kInt8Block; ++k) isum += qrow[k];
        sum += static_cast<float>(isum) * scale[m * blocks + j];
      }
      group_sum[m * ngroups + g] = sum;
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
