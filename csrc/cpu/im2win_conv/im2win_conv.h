// im2win convolution on the CPU (Lu et al., arXiv 2306.14320). The kernels (im2win_conv.cpp)
// take raw pointers, no torch headers; the drivers (im2win_driver.cpp) own layout conversion,
// scheduling and per-thread buffers, and are what the binding calls.
#pragma once
#include <cstdint>

#include "common/bcq_format.h"
#include "common/conv_shape.h"

namespace torch_lowbit {
namespace cpu {

constexpr int64_t kConvTileO = 16;

// Window buffer rows for (n, oh) in [row0, row1) of the N * OH rows. `win` starts at window row
// win_row0 of the buffer layout [N][groups][OH][Wwin][R][Cg] (ConvShape::window_floats); a
// nonzero win_row0 (a buffer of a few rows) needs groups == 1, where rows are consecutive.
void im2win_transform(const float* x_nhwc, const ConvShape& s, int64_t row0, int64_t row1,
                      float* win, int64_t win_row0 = 0);

// ---- portable path: 16-channel weight tiles ----
// Weight tile for group g, output channels [o0, o0 + ob) of that group, as [S][R][Cg][ob], from
// a BCQ weight whose rows are the flattened [Cg * R * S] filters; row_scratch holds Cg * R * S
// floats. (A dense tile is im2win_strip_dense with width ob.)
void im2win_weight_tile_bcq(const BcqWeight& w, const ConvShape& s, int64_t g, int64_t o0,
                            int64_t ob, float* tile, float* row_scratch);
// out_nhwc[n, oh, :, g * Og + o0 + j] for rows in [row0, row1), j < ob, from one weight tile.
void im2win_compute_tile_portable(const float* win, const float* tile, const float* bias,
                                  const ConvShape& s, int64_t g, int64_t o0, int64_t ob,
                                  int64_t row0, int64_t row1, float* out_nhwc);

// ---- SIMD path: the microkernels' strips ----
// out_nhwc rows [row0, row1) of output channels [o0, o0 + cols) of group g, from a strip of the
// group's filters laid out in window order (q, r, c); out must be zeroed (or hold the bias).
// `win` starts at window row win_row0 (as im2win_transform writes it), `out` at output row
// out_row0 ([rows][OW][O]).
void im2win_gemm_rows(bool avx512, const float* win, int64_t win_row0, const float* strip,
                      const ConvShape& s, int64_t g, int64_t o0, int64_t cols, int64_t row0,
                      int64_t row1, float* out, int64_t out_row0);
// The strip for output channels [o0, o0 + width) of group g (zero past Og), window order;
// the dense version reads the weight already permuted to [O][S][R][Cg].
void im2win_strip_dense(const float* w_window, const ConvShape& s, int64_t g, int64_t o0,
                        int64_t width, float* strip);
// A strip whose k rows are in the stored filter order (c, r, q) moved to window order (q, r, c).
void im2win_strip_to_window(const float* flat, const ConvShape& s, int64_t width, float* strip);
void im2win_strip_bcq(bool avx512, const BcqWeight& w, const ConvShape& s, int64_t g, int64_t o0,
                      int64_t width, float* strip, float* scratch);

}  // namespace cpu
}  // namespace torch_lowbit
