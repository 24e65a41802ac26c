// zero_point_fit's per-group search compiled for AVX2 + FMA: vroundps makes the rounding 8 lanes
// wide (the baseline build calls nearbyint per element).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu/grid_fit/zero_point_fit.h"

// Only this file's own functions get the ISA: every header is included above.
#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace torch_lowbit {
namespace cpu {
namespace {
#include "cpu/grid_fit/zero_point_fit_group.inc"
}  // namespace

void zero_point_fit_rows_avx2(const float* w, int64_t r0, int64_t r1, int64_t G, int bits,
                              int points, int refits, float* scale, float* zp) {
  for (int64_t r = r0; r < r1; ++r) {
    const Grid g = fit_group(w + r * G, G, bits, points, refits);
    scale[r] = g.scale;
    zp[r] = g.zp;
  }
}

}  // namespace cpu
}  // namespace torch_lowbit

#pragma GCC pop_options
