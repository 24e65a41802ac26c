// method="mse"'s grid search, one group at a time while it sits in L1: the torch version
// (grids.py: fit_mse) streams the whole layer through memory ~10 times per clip ratio, 4.5 s
// for 11008x4096 on 2 cores; this is the same arithmetic in the same order per group, so
// both pick the same grid up to float summation order.
#include "cpu/grid_fit/zero_point_fit.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace torch_lowbit {
namespace cpu {
namespace {
#include "cpu/grid_fit/zero_point_fit_group.inc"
}  // namespace

void zero_point_fit_rows(const float* w, int64_t r0, int64_t r1, int64_t G, int bits, int points,
                         int refits, float* scale, float* zp) {
  for (int64_t r = r0; r < r1; ++r) {
    const Grid g = fit_group(w + r * G, G, bits, points, refits);
    scale[r] = g.scale;
    zp[r] = g.zp;
  }
}

void zero_point_fit(const float* w, int64_t rows, int64_t G, int bits, int points, int refits,
                    float* scale, float* zp) {
  const bool avx2 = active_isa() >= Isa::kAvx2;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(G, 1));
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    if (avx2)
      zero_point_fit_rows_avx2(w, r0, r1, G, bits, points, refits, scale, zp);
    else
      zero_point_fit_rows(w, r0, r1, G, bits, points, refits, scale, zp);
  });
}

}  // namespace cpu
}  // namespace torch_lowbit
