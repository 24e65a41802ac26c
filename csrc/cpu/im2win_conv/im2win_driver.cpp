// The CPU im2win drivers: input to NHWC, the window buffer, then threads over output rows or
// filter strips (whichever gives every thread work), each expanding the strips it needs itself
// (never the whole weight), and the output back to x's memory format and dtype.
#include "cpu/im2win_conv/im2win_driver.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "common/checks.h"
#include "cpu/im2win_conv/im2win_conv.h"
#include "cpu/isa/isa.h"
#include "cpu/microkernels/microkernels.h"

namespace torch_lowbit {
namespace cpu {
namespace {

// NCHW <-> NHWC for the conv's input and output. ATen's permuted copy is an element loop (6% of
// a ResNet-50 3x3 layer at batch 1); on AVX-512 each image is moved in 16 x 16 register
// transposes, threads over blocks of 64 pixels.
template <typename Fn>
void per_pixel_block(int64_t N, int64_t pixels, Fn fn) {
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (pixels + kBlock - 1) / kBlock;
  at::parallel_for(0, N * blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t p0 = (b % blocks) * kBlock;
      fn(b / blocks, p0, std::min(kBlock, pixels - p0));
    }
  });
}

at::Tensor to_nhwc(const at::Tensor& x) {  // x fp32 [N, C, H, W] -> contiguous [N, H, W, C]
  if (is_channels_last(x) || !x.is_contiguous() || active_isa() < Isa::kAvx512)
    return x.permute({0, 2, 3, 1}).contiguous();
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  auto out = at::empty({N, x.size(2), x.size(3), C}, x.options());
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  per_pixel_block(N, HW, [&](int64_t n, int64_t p0, int64_t count) {
    transpose_avx512(src + n * C * HW + p0, HW, C, count, dst + (n * HW + p0) * C, C);
  });
  return out;
}

at::Tensor nhwc_to_nchw(const at::Tensor& y) {  // y contiguous fp32 [N, H, W, C] -> [N, C, H, W]
  if (active_isa() < Isa::kAvx512) return y.permute({0, 3, 1, 2}).contiguous();
  const int64_t N = y.size(0), C = y.size(3), HW = y.size(1) * y.size(2);
  auto out = at::empty({N, C, y.size(1), y.size(2)}, y.options());
  const float* src = y.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  per_pixel_block(N, HW, [&](int64_t n, int64_t p0, int64_t count) {
    transpose_avx512(src + (n * HW + p0) * C, C, count, C, dst + n * C * HW + p0, HW);
  });
  return out;
}

// The SIMD paths run each output row as a GEMM over overlapping window rows against strips of
// the group's filters (strip_fn(s, avx512, g, o0, width, strip, scratch) fills one, expanding
// low-bit weights per strip); the portable path uses 16-channel tiles (tile_fn(s, g, o0, ob,
// tile, row_scratch)). Each thread expands the weights it needs itself: never the whole weight.
template <typename StripFn, typename TileFn>
at::Tensor run_im2win(const at::Tensor& x, const ConvShape& s,
                      const std::optional<at::Tensor>& bias, StripFn strip_fn, TileFn tile_fn) {
  const int64_t groups = s.groups;
  const bool channels_last = is_channels_last(x);
  const auto x_nhwc = to_nhwc(x.to(at::kFloat));
  const auto bias_f = bias ? f32(*bias) : at::Tensor();
  const float* bias_p = bias ? bias_f.data_ptr<float>() : nullptr;
  auto out_nhwc = new_output({s.N, s.OH, s.OW, s.O}, x.options().dtype(at::kFloat));
  const int64_t rows = s.N * s.OH;
  if (rows > 0 && s.O > 0) {
    auto win = new_output({s.window_floats()}, x_nhwc.options());
    const float* win_p = win.data_ptr<float>();
    float* out_p = out_nhwc.data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
      im2win_transform(x_nhwc.data_ptr<float>(), s, r0, r1, win.data_ptr<float>());
    });
    const int64_t Og = s.Og(), Kwin = s.S * s.R * s.Cg();
    const Isa isa = active_isa();
    if (isa != Isa::kPortable) {
      const bool avx512 = isa >= Isa::kAvx512;
      const int64_t width = avx512 ? kStripColsAvx512 : kStripColsAvx2;
      const int64_t strips_per_group = (Og + width - 1) / width;
      const int64_t tasks = groups * strips_per_group;
      // Many strips (deep layers, small images): threads split the strips and each strip is
      // expanded once. Few strips (shallow layers, large images): threads split the rows and
      // each expands the strips it needs.
      const bool split_strips = tasks >= 2 * at::get_num_threads();
      at::parallel_for(0, split_strips ? tasks : rows, 1, [&](int64_t t0, int64_t t1) {
        // Per-thread buffers kept across calls: value-initialised vectors cost a memset and,
        // above the mmap threshold, fresh page faults on every call.
        thread_local std::vector<float> strip_buf, scratch_buf;
        strip_buf.resize(std::max<size_t>(strip_buf.size(), Kwin * width));
        scratch_buf.resize(std::max<size_t>(scratch_buf.size(), 2 * ((Kwin + 7) / 8 * 8) * width));
        float* strip = strip_buf.data();
        float* scratch = scratch_buf.data();
        const int64_t first = split_strips ? t0 : 0, last = split_strips ? t1 : tasks;
        const int64_t r0 = split_strips ? 0 : t0, r1 = split_strips ? rows : t1;
        for (int64_t t = first; t < last; ++t) {
          const int64_t g = t / strips_per_group, o0 = (t % strips_per_group) * width;
          const int64_t cols = std::min(width, Og - o0), c0 = g * Og + o0;
          // The GEMM accumulates: the block it owns starts from the bias.
          for (int64_t px = r0 * s.OW; px < r1 * s.OW; ++px)
            for (int64_t o = c0; o < c0 + cols; ++o) out_p[px * s.O + o] = bias_p ? bias_p[o] : 0.f;
          strip_fn(s, avx512, g, o0, width, strip, scratch);
          im2win_gemm_rows(avx512, win_p, strip, s, g, o0, cols, r0, r1, out_p);
        }
      });
    } else {
      at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
        std::vector<float> tile(Kwin * kConvTileO), row_scratch(Kwin);
        for (int64_t g = 0; g < groups; ++g)
          for (int64_t o0 = 0; o0 < Og; o0 += kConvTileO) {
            const int64_t ob = std::min(kConvTileO, Og - o0);
            tile_fn(s, g, o0, ob, tile.data(), row_scratch.data());
            im2win_compute_tile_portable(win_p, tile.data(), bias_p, s, g, o0, ob, r0, r1, out_p);
          }
      });
    }
  }
  if (channels_last) return out_nhwc.permute({0, 3, 1, 2}).to(x.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
  return nhwc_to_nchw(out_nhwc).to(x.scalar_type());
}

}  // namespace

at::Tensor im2win_conv2d_dense(const at::Tensor& x, const at::Tensor& weight, const ConvShape& s,
                              const std::optional<at::Tensor>& bias) {
  const auto w_oihw = f32(weight).contiguous();
  const float* wp = w_oihw.data_ptr<float>();
  // AVX-512 packs each strip straight from the [O][Cg][R][S] filters (16 x 16 transposes, then
  // k rows moved to window order inside the L2-sized strip). The other paths read filters
  // permuted to window order [O][S][R][Cg] once per call: a full extra pass over the weight
  // (for ResNet-50's res5, 9.4 MB, about as long as the convolution itself at batch 1).
  const bool direct = active_isa() >= Isa::kAvx512;
  const auto w_window = direct ? at::Tensor() : w_oihw.permute({0, 3, 2, 1}).contiguous();
  const float* wwp = direct ? nullptr : w_window.data_ptr<float>();
  return run_im2win(
      x, s, bias,
      [&](const ConvShape& s, bool avx512, int64_t g, int64_t o0, int64_t width, float* strip,
          float* scratch) {
        const int64_t K = s.S * s.R * s.Cg();
        if (direct) {  // AVX-512: width is kStripColsAvx512
          pack_strip_avx512(wp + (g * s.Og() + o0) * K, K, std::min(width, s.Og() - o0), K, scratch);
          im2win_strip_to_window(scratch, s, width, strip);
        } else {
          im2win_strip_dense(wwp, s, g, o0, width, strip);
        }
      },
      [&](const ConvShape& s, int64_t g, int64_t o0, int64_t ob, float* tile, float*) {
        im2win_strip_dense(wwp, s, g, o0, ob, tile);
      });
}

at::Tensor im2win_conv2d_bcq(const at::Tensor& x, const BcqWeight& w, const ConvShape& s,
                            const std::optional<at::Tensor>& bias) {
  return run_im2win(
      x, s, bias,
      [&](const ConvShape& s, bool avx512, int64_t g, int64_t o0, int64_t width, float* strip,
          float* scratch) { im2win_strip_bcq(avx512, w, s, g, o0, width, strip, scratch); },
      [&](const ConvShape& s, int64_t g, int64_t o0, int64_t ob, float* tile, float* row_scratch) {
        im2win_weight_tile_bcq(w, s, g, o0, ob, tile, row_scratch);
      });
}

}  // namespace cpu
}  // namespace torch_lowbit
