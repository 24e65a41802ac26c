// Scale handling shared by the AVX-512 kernel files (LUT-GEMM, tiled GEMM, AMX expansion).
// Include it after the file's `#pragma GCC target(...)`: everything here has internal linkage,
// so each file compiles its own copy for its own ISA and no inline function built with one
// file's flags is shared with another (which the headers included above the pragma must avoid).
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "common/bcq_format.h"

namespace torch_lowbit {
namespace cpu {
namespace {

// Lanes [0, rows) of 16 (rows <= 0: none).
inline __mmask16 live_mask(int64_t rows) {
  return rows >= 16 ? static_cast<__mmask16>(0xFFFF) : rows <= 0 ? 0 : static_cast<__mmask16>((1u << rows) - 1u);
}

// 16 scales (fp16 or fp32 as stored); lanes outside `live` (rows past N) read as zero.
inline __m512 load_scales(const void* src, bool half, __mmask16 live) {
  if (half) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(live, src));
  return _mm512_maskz_loadu_ps(live, src);
}

// For the 16 rows from n0 in group g, W = base + sum_b [bit_b set] * twice_alpha[b] with
// base = offset - sum_b alpha_b: returns base and fills twice_alpha.
template <int BITS>
inline __m512 group_scales(const BcqWeight& w, int64_t g, int64_t n0, __mmask16 live,
                           __m512 twice_alpha[BITS]) {
  __m512 base = load_scales(w.offset_ptr(g, n0), w.half, live);
#pragma GCC unroll 8
  for (int b = 0; b < BITS; ++b) {
    const __m512 a = load_scales(w.alpha_ptr(b, g, n0), w.half, live);
    base = _mm512_sub_ps(base, a);
    twice_alpha[b] = _mm512_add_ps(a, a);
  }
  return base;
}

}  // namespace
}  // namespace cpu
}  // namespace torch_lowbit
