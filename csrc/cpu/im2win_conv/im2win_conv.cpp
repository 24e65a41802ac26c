// im2win convolution on the CPU (Lu et al., arXiv 2306.14320), NHWC-style window layout.
//
// For output row (n, oh) and group g the window buffer holds, for every input column it needs,
// the R input rows stacked channel-innermost: win[n][g][oh][col][r][cg]. The R x S x Cg window
// of output (oh, ow) is then S runs of R * Cg contiguous floats (one run when dilation_w = 1),
// and neighbouring windows overlap, so the buffer is ~R / stride_h times the input, not the
// R * S times of im2col.
#include <algorithm>
#include <vector>

#include "cpu/im2win_conv/im2win_conv.h"
#include "cpu/bcq_dequantize/bcq_dequantize.h"
#include "cpu/microkernels/microkernels.h"

namespace torch_lowbit {
namespace cpu {

void im2win_transform(const float* x, const ConvShape& s, int64_t row0, int64_t row1, float* win,
                      int64_t win_row0) {
  const int64_t Cg = s.Cg(), Wwin = s.Wwin();
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t n = row / s.OH, oh = row % s.OH;
    for (int64_t g = 0; g < s.groups; ++g) {
      float* dst = win + (((n * s.groups + g) * s.OH + oh) - win_row0) * Wwin * s.R * Cg;
      for (int64_t col = 0; col < Wwin; ++col) {
        const int64_t iw = col - s.pl;
        for (int64_t r = 0; r < s.R; ++r) {
          const int64_t ih = oh * s.sh - s.pt + r * s.dh;
          float* d = dst + (col * s.R + r) * Cg;
          if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) {
            std::fill(d, d + Cg, 0.f);  // zero padding lives in the window buffer
          } else {
            const float* src = x + ((n * s.H + ih) * s.W + iw) * s.C + g * Cg;
            std::copy(src, src + Cg, d);
          }
        }
      }
    }
  }
}

void im2win_weight_tile_bcq(const BcqWeight& w, const ConvShape& s, int64_t g, int64_t o0,
                            int64_t ob, float* tile, float* row_scratch) {
  const int64_t Cg = s.Cg();
  for (int64_t j = 0; j < ob; ++j) {
    const int64_t o = g * s.Og() + o0 + j;
    bcq_dequantize_block(w, o, o + 1, 0, w.K, row_scratch, w.K);
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t q = 0; q < s.S; ++q)
          tile[((q * s.R + r) * Cg + c) * ob + j] = row_scratch[(c * s.R + r) * s.S + q];
  }
}

void im2win_strip_dense(const float* w_window, const ConvShape& s, int64_t g, int64_t o0,
                        int64_t width, float* strip) {
  // w_window rows are already in window order [O][S][R][Cg]: the strip is a blocked transpose.
  const int64_t K = s.S * s.R * s.Cg();
  constexpr int64_t kBlock = 16;
  for (int64_t k0 = 0; k0 < K; k0 += kBlock) {
    const int64_t k1 = std::min(K, k0 + kBlock);
    for (int64_t j = 0; j < width; ++j) {
      if (o0 + j < s.Og()) {
        const float* row = w_window + (g * s.Og() + o0 + j) * K;
        for (int64_t k = k0; k < k1; ++k) strip[k * width + j] = row[k];
      } else {
        for (int64_t k = k0; k < k1; ++k) strip[k * width + j] = 0.f;
      }
    }
  }
}

void im2win_strip_bcq(bool avx512, const BcqWeight& w, const ConvShape& s, int64_t g, int64_t o0,
                      int64_t width, float* strip, float* scratch) {
  // Expand the stored rows (flattened (c, r, s) order) a strip at a time from the 16-row panel
  // boundary at or before the first channel (scratch: 2 strips of round_up(K, 8) rows), then
  // move each k row to its window position (q, r, c). Channels past the group are zero.
  const int64_t Cg = s.Cg(), K8 = (Cg * s.R * s.S + 7) / 8 * 8;
  const int64_t n0 = g * s.Og() + o0;
  const int64_t base = n0 - n0 % kPanelRows;
  const int64_t blocks = (n0 - base + width + width - 1) / width;
  for (int64_t blk = 0; blk < blocks; ++blk) {
    float* dst = scratch + blk * K8 * width;
    if (avx512)
      expand_bcq_strip_avx512(w, base + blk * width, 0, K8, dst);
    else
      expand_bcq_strip_avx2(w, base + blk * width, 0, K8, dst);
  }
  // The common case, a strip on a panel boundary inside the group: each k row moves whole.
  if (n0 == base && o0 + width <= s.Og()) {
    im2win_strip_to_window(scratch, s, width, strip);
    return;
  }
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t q = 0; q < s.S; ++q) {
        const int64_t k = (c * s.R + r) * s.S + q;
        float* dst = strip + ((q * s.R + r) * Cg + c) * width;
        for (int64_t j = 0; j < width; ++j) {
          const int64_t idx = n0 + j - base;
          dst[j] = o0 + j < s.Og() ? scratch[(idx / width) * K8 * width + k * width + idx % width] : 0.f;
        }
      }
}

void im2win_strip_to_window(const float* flat, const ConvShape& s, int64_t width, float* strip) {
  const int64_t Cg = s.Cg();
  if (s.R * s.S == 1) {
    std::copy(flat, flat + Cg * width, strip);
    return;
  }
  for (int64_t c = 0; c < Cg; ++c)
    for (int64_t r = 0; r < s.R; ++r)
      for (int64_t q = 0; q < s.S; ++q) {
        const float* src = flat + ((c * s.R + r) * s.S + q) * width;
        std::copy(src, src + width, strip + ((q * s.R + r) * Cg + c) * width);
      }
}

void im2win_gemm_rows(bool avx512, const float* win, int64_t win_row0, const float* strip,
                      const ConvShape& s, int64_t g, int64_t o0, int64_t cols, int64_t row0,
                      int64_t row1, float* out, int64_t out_row0) {
  // All output pixels of rows [row0, row1) form the M side of one GEMM: pixel (row, ow) reads
  // its window at column ow * sw of its row's window buffer, so each pixel gets its own A
  // pointer and blocks of 6 pixels span output rows (small images would otherwise leave most
  // micro-kernel calls short). K is cut into slices of kDepth so the strip slice (kDepth x 32
  // floats) stays in L1 while every pixel block sweeps it. With dilation 1 the S runs are
  // adjacent (depth S * run); else each run is its own piece.
  constexpr int64_t kDepth = 256;
  const int64_t run = s.R * s.Cg(), Wwin = s.Wwin();
  const int64_t width = avx512 ? kStripColsAvx512 : kStripColsAvx2;
  const int64_t pixels = (row1 - row0) * s.OW;
  thread_local std::vector<const float*> a;  // one pointer per pixel, kept across calls
  a.resize(pixels);
  float* c = out + (row0 - out_row0) * s.OW * s.O + g * s.Og() + o0;
  const int64_t pieces = s.dw == 1 ? 1 : s.S;
  const int64_t depth = s.dw == 1 ? s.S * run : run;
  for (int64_t q = 0; q < pieces; ++q) {
    for (int64_t row = row0; row < row1; ++row) {
      const int64_t n = row / s.OH, oh = row % s.OH;
      const float* win_row = win + (((n * s.groups + g) * s.OH + oh) - win_row0) * Wwin * run + q * s.dw * run;
      for (int64_t ow = 0; ow < s.OW; ++ow) a[(row - row0) * s.OW + ow] = win_row + ow * s.sw * run;
    }
    for (int64_t k0 = 0; k0 < depth; k0 += kDepth) {
      const int64_t kb = std::min(kDepth, depth - k0);
      const float* b = strip + (q * run + k0) * width;
      if (avx512)
        gemm_rows_avx512(a.data(), pixels, kb, b, c, s.O, cols);
      else
        gemm_rows_avx2(a.data(), pixels, kb, b, c, s.O, cols);
      for (auto& p : a) p += kb;
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit

namespace torch_lowbit {
namespace cpu {
namespace {

constexpr int64_t kPixelsPerStep = 4;

// OB > 0: the tile width is known at compile time (the inner loop vectorises fully).
template <int64_t OB>
void compute_row(const float* win_row, const float* tile, const float* bias, const ConvShape& s,
                 int64_t ob_runtime, float* out_row, int64_t out_c0) {
  const int64_t ob = OB > 0 ? OB : ob_runtime;
  const int64_t run = s.R * s.Cg();
  for (int64_t ow0 = 0; ow0 < s.OW; ow0 += kPixelsPerStep) {
    const int64_t pb = std::min(kPixelsPerStep, s.OW - ow0);
    float acc[kPixelsPerStep][kConvTileO];
    for (int64_t p = 0; p < kPixelsPerStep; ++p)
      for (int64_t j = 0; j < ob; ++j) acc[p][j] = bias ? bias[out_c0 + j] : 0.f;
    for (int64_t q = 0; q < s.S; ++q) {
      const float* t = tile + q * run * ob;
      const float* src[kPixelsPerStep];
      for (int64_t p = 0; p < kPixelsPerStep; ++p) {
        const int64_t ow = ow0 + std::min(p, pb - 1);  // tail pixels repeat the last valid one
        src[p] = win_row + (ow * s.sw + q * s.dw) * run;
      }
      for (int64_t e = 0; e < run; ++e) {
        const float* te = t + e * ob;
        for (int64_t p = 0; p < kPixelsPerStep; ++p) {
          const float a = src[p][e];
          for (int64_t j = 0; j < ob; ++j) acc[p][j] += a * te[j];
        }
      }
    }
    for (int64_t p = 0; p < pb; ++p) {
      float* o = out_row + (ow0 + p) * s.O + out_c0;
      for (int64_t j = 0; j < ob; ++j) o[j] = acc[p][j];
    }
  }
}

}  // namespace

void im2win_compute_tile_portable(const float* win, const float* tile, const float* bias,
                         const ConvShape& s, int64_t g, int64_t o0, int64_t ob, int64_t row0,
                         int64_t row1, float* out) {
  const int64_t Wwin = s.Wwin();
  const int64_t out_c0 = g * s.Og() + o0;
  for (int64_t row = row0; row < row1; ++row) {
    const int64_t n = row / s.OH, oh = row % s.OH;
    const float* win_row = win + (((n * s.groups + g) * s.OH + oh) * Wwin) * s.R * s.Cg();
    float* out_row = out + row * s.OW * s.O;
    if (ob == kConvTileO)
      compute_row<kConvTileO>(win_row, tile, bias, s, ob, out_row, out_c0);
    else
      compute_row<0>(win_row, tile, bias, s, ob, out_row, out_c0);
  }
}

}  // namespace cpu
}  // namespace torch_lowbit
