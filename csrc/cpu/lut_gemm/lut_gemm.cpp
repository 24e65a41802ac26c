// The CPU LUT-GEMM driver: tables for a block of activation rows (threads over rows), then
// threads over 16-row panels (SIMD) or rows (portable). The SIMD paths use 16-entry tables
// (mu = 4); the portable path 256-entry tables (mu = 8), which cost fewer adds per weight byte
// when there is no vector lookup.
#include "cpu/lut_gemm/lut_gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

namespace torch_lowbit {
namespace cpu {

void lut_gemm(const float* x, int64_t M, const BcqWeight& w, Isa isa, float* y) {
  const bool simd = isa != Isa::kPortable;
  constexpr int64_t kRowsPerBlock = 8;
  const int64_t table_stride = simd ? (w.Kp / 4) * kLut16Entries : w.row_bytes() * kLutEntries;
  std::vector<float> tables(kRowsPerBlock * table_stride), sums(kRowsPerBlock * w.ngroups());
  for (int64_t m0 = 0; m0 < M; m0 += kRowsPerBlock) {
    const int64_t mb = std::min(kRowsPerBlock, M - m0);
    at::parallel_for(0, mb, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const float* xr = x + (m0 + i) * w.K;
        float* t = tables.data() + i * table_stride;
        float* gs = sums.data() + i * w.ngroups();
        if (simd)
          lut16_build_tables(xr, w.K, w.Kp, w.group_size, t, gs);
        else
          lut_build_tables(xr, w.K, w.Kp, w.group_size, t, gs);
      }
    });
    float* yb = y + m0 * w.N;
    if (simd) {
      at::parallel_for(0, w.panels(), 4, [&](int64_t p0, int64_t p1) {
        if (isa >= Isa::kAvx512)
          lut_gemm_panels_avx512(tables.data(), sums.data(), mb, w, p0, p1, yb);
        else
          lut_gemm_panels_avx2(tables.data(), sums.data(), mb, w, p0, p1, yb);
      });
    } else {
      at::parallel_for(0, w.N, 64, [&](int64_t n0, int64_t n1) {
        lut_gemm_rows(tables.data(), sums.data(), mb, w, n0, n1, yb);
      });
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit
