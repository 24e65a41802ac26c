// The scales of a few consecutive panels gathered into a per-thread buffer, for the int8 LUT
// kernels. A panel's scales are (bits + 1) x groups runs of 16 values, each in its own page
// ([bits, groups, N] layout); read in the panel loop they were the cold kernel's bottleneck
// (5632 x 2048 3-bit m=1 on AMD EPYC Zen 3: ~460 us cold against ~300 us with the scales in
// cache; prefetching them ahead changed nothing). Copying a chunk's runs first reads each as one
// sequential burst (~320 us). Plain C++ (no ISA flags): both the AVX2 and the AVX-512 kernel
// files use it.
#pragma once
#include <algorithm>
#include <cstdint>

#include "common/bcq_format.h"

namespace torch_lowbit {
namespace cpu {

class ScaleChunk {
 public:
  // Panels per chunk: as many as fit the buffer budget (it shares L2 with the plane streams).
  static int64_t panels_per_chunk(const BcqWeight& w);

  // A view of the calling thread's buffer sized for `panels` panels of w.
  ScaleChunk(const BcqWeight& w, int64_t panels);

  // Copies rows [n0, n1) of w's scales, the same [bits, groups, rows] layout (so a BcqWeight
  // describes it: alpha_ptr / offset_ptr at row n - n0); returns the chunk's view.
  const BcqWeight& gather(const BcqWeight& w, int64_t n0, int64_t n1);

 private:
  static constexpr int64_t kBudgetBytes = 128 * 1024;
  BcqWeight chunk_;
};

// fn(p, sc, sn0) for the panels [p0, p1) of w in order, each chunk's scales gathered first: sc
// is the chunk's view, sn0 the row of panel p in it. Defined here, above the kernel files' ISA
// pragmas, so it is plain x86-64; the kernels' lambdas carry the ISA.
template <typename Fn>
void for_each_panel_with_scales(const BcqWeight& w, int64_t p0, int64_t p1, Fn&& fn) {
  const int64_t per_chunk = ScaleChunk::panels_per_chunk(w);
  ScaleChunk chunk(w, per_chunk);
  for (int64_t c0 = p0; c0 < p1; c0 += per_chunk) {
    const int64_t c1 = std::min(p1, c0 + per_chunk), n0 = c0 * kPanelRows;
    const BcqWeight& sc = chunk.gather(w, n0, std::min(w.N, c1 * kPanelRows));
    for (int64_t p = c0; p < c1; ++p) fn(p, sc, p * kPanelRows - n0);
  }
}

}  // namespace cpu
}  // namespace torch_lowbit
