// In torch, this loop costs ~10 tensor ops per column (~350 us at MiniLM's shapes, 8 s of a 20 s
// self-calibrated GPTQ run); here a row's block stays in L1 and each column is a few scalar steps.
// Multiplies and subtracts are kept separate (no FMA contraction in this baseline build) so the
// codes equal the torch reference's bit for bit.
#include "cpu/grid_fit/gptq_block.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace torch_lowbit {
namespace cpu {

void gptq_block(const float* w, const float* hinv, const float* levels, const int64_t* group_of,
                int64_t N, int64_t B, int64_t ng, int64_t L, int64_t* codes, float* err) {
  at::parallel_for(0, N, 16, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(B);
    for (int64_t n = r0; n < r1; ++n) {
      for (int64_t j = 0; j < B; ++j) row[j] = w[n * B + j];
      for (int64_t i = 0; i < B; ++i) {
        const float* lv = levels + (n * ng + group_of[i]) * L;
        const float x = row[i];
        int64_t best = 0;
        float best_d = std::fabs(x - lv[0]);
        for (int64_t c = 1; c < L; ++c) {
          const float d = std::fabs(x - lv[c]);
          if (d < best_d) {
            best_d = d;
            best = c;
          }
        }
        const float e = (x - lv[best]) / hinv[i * B + i];
        codes[n * B + i] = best;
        err[n * B + i] = e;
        const float* h = hinv + i * B;
        for (int64_t j = i; j < B; ++j) {
          const float step = e * h[j];
          row[j] = row[j] - step;
        }
      }
    }
  });
}

}  // namespace cpu
}  // namespace torch_lowbit
