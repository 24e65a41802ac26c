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

// Cache budgets of the SIMD paths' loop nest: the window rows of one block of output rows stay
// in L2 (256 KiB: half of Zen 3's L2) while every strip of a chunk (4 MiB of expanded filters)
// passes over them.
constexpr int64_t kWindowBlockBytes = 256 << 10;
constexpr int64_t kStripChunkBytes = 4 << 20;
// The fused schedule (run_im2win) from this window buffer size on: below it the buffer and the
// output transpose stay in cache, and splitting strips expands each strip once, not per thread.
constexpr int64_t kFusedMinWindowBytes = 1 << 20;

// out[n][o][oh][:] = block[(row - b0) * OW + ow][o] for the rows [b0, b1) of one block: the
// NHWC result of a block moved into the NCHW output while it is still in cache.
void store_block_nchw(const float* block, const ConvShape& s, int64_t b0, int64_t b1, bool avx512,
                      float* out) {
  const int64_t plane = s.OH * s.OW;
  for (int64_t row = b0; row < b1; ++row) {
    const int64_t n = row / s.OH, oh = row % s.OH;
    const float* src = block + (row - b0) * s.OW * s.O;
    float* dst = out + n * s.O * plane + oh * s.OW;
    if (avx512) {
      transpose_avx512(src, s.O, s.OW, s.O, dst, plane);
    } else {
      for (int64_t ow = 0; ow < s.OW; ++ow)
        for (int64_t o = 0; o < s.O; ++o) dst[o * plane + ow] = src[ow * s.O + o];
    }
  }
}

// The SIMD paths run each output row as a GEMM over overlapping window rows against strips of
// the group's filters (strip_fn(s, avx512, g, o0, width, strip, scratch) fills one, expanding
// low-bit weights per strip); the portable path uses 16-channel tiles (tile_fn(s, g, o0, ob,
// tile, row_scratch)). Each thread expands the weights it needs itself: never the whole weight.
//
// Two schedules on the SIMD paths:
// - fused (groups == 1, every strip fits one chunk, a window buffer past 1 MiB): threads split
//   blocks of output rows; per block the window rows are built into a thread's own L2-sized
//   buffer, every strip runs over them into a block of the output, and the block is stored
//   straight into the NCHW (or NHWC) result. No window buffer for the whole batch and no
//   separate output transpose: on ResNet-50's 3x3 layers at batch 8 those passes over memory
//   cost about as much as the GEMM.
// - otherwise (deep layers with few rows, grouped convs): the window buffer for the batch,
//   threads split strips or rows, and each block of rows meets a chunk of strips in turn.
template <typename StripFn, typename TileFn>
at::Tensor run_im2win(const at::Tensor& x, const ConvShape& s,
                      const std::optional<at::Tensor>& bias, StripFn strip_fn, TileFn tile_fn) {
  const int64_t groups = s.groups;
  const bool channels_last = is_channels_last(x);
  const auto x_nhwc = to_nhwc(x.to(at::kFloat));
  const float* x_p = x_nhwc.data_ptr<float>();
  const auto bias_f = bias ? f32(*bias) : at::Tensor();
  const float* bias_p = bias ? bias_f.data_ptr<float>() : nullptr;
  const int64_t rows = s.N * s.OH;
  const int64_t Og = s.Og(), Kwin = s.S * s.R * s.Cg(), run = s.R * s.Cg();
  const Isa isa = active_isa();
  const bool avx512 = isa >= Isa::kAvx512;
  const int64_t width = avx512 ? kStripColsAvx512 : kStripColsAvx2;
  const int64_t strips_per_group = (Og + width - 1) / width;
  const int64_t tasks = groups * strips_per_group;
  const int64_t strip_floats = Kwin * width;
  const int64_t strips_per_chunk = std::max<int64_t>(1, kStripChunkBytes / (strip_floats * 4));
  const int64_t rows_per_block = std::max<int64_t>(1, kWindowBlockBytes / std::max<int64_t>(1, s.Wwin() * run * 4));
  const int64_t threads = at::get_num_threads();
  const bool fused = isa != Isa::kPortable && groups == 1 && tasks <= strips_per_chunk &&
                     s.window_floats() * 4 >= kFusedMinWindowBytes && rows >= 2 * threads;
  // The GEMM accumulates: each block of output it owns starts from the bias.
  auto init_bias = [&](float* c, int64_t pixels, int64_t oc, int64_t cols) {
    for (int64_t px = 0; px < pixels; ++px)
      for (int64_t o = oc; o < oc + cols; ++o) c[px * s.O + o] = bias_p ? bias_p[o] : 0.f;
  };
  // Per-thread buffers kept across calls: value-initialised vectors cost a memset and, above
  // the mmap threshold, fresh page faults on every call.
  auto thread_buffers = [&](int64_t strips) {
    thread_local std::vector<float> strip_buf, scratch_buf;
    strip_buf.resize(std::max<size_t>(strip_buf.size(), strips * strip_floats));
    scratch_buf.resize(std::max<size_t>(scratch_buf.size(), 2 * ((Kwin + 7) / 8 * 8) * width));
    return std::make_pair(strip_buf.data(), scratch_buf.data());
  };
  auto expand_strips = [&](int64_t t0, int64_t t1, float* strips, float* scratch) {
    for (int64_t t = t0; t < t1; ++t)
      strip_fn(s, avx512, t / strips_per_group, (t % strips_per_group) * width, width,
               strips + (t - t0) * strip_floats, scratch);
  };

  if (fused && s.O > 0) {
    auto out = new_output(channels_last ? at::IntArrayRef{s.N, s.OH, s.OW, s.O} : at::IntArrayRef{s.N, s.O, s.OH, s.OW},
                          x.options().dtype(at::kFloat));
    float* out_p = out.data_ptr<float>();
    // at least two blocks per thread
    const int64_t block_rows = std::min(rows_per_block, (rows + 2 * threads - 1) / (2 * threads));
    const int64_t blocks = (rows + block_rows - 1) / block_rows;
    at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
      auto [strips, scratch] = thread_buffers(tasks);
      expand_strips(0, tasks, strips, scratch);
      thread_local std::vector<float> win_buf, out_buf;
      win_buf.resize(std::max<size_t>(win_buf.size(), block_rows * s.Wwin() * run));
      out_buf.resize(std::max<size_t>(out_buf.size(), block_rows * s.OW * s.O));
      for (int64_t k = k0; k < k1; ++k) {
        const int64_t b0 = k * block_rows, b1 = std::min(rows, b0 + block_rows);
        im2win_transform(x_p, s, b0, b1, win_buf.data(), b0);
        float* block = channels_last ? out_p + b0 * s.OW * s.O : out_buf.data();
        for (int64_t t = 0; t < tasks; ++t) {
          const int64_t o0 = t * width, cols = std::min(width, Og - o0);
          init_bias(block, (b1 - b0) * s.OW, o0, cols);
          im2win_gemm_rows(avx512, win_buf.data(), b0, strips + t * strip_floats, s, 0, o0, cols, b0, b1, block, b0);
        }
        if (!channels_last) store_block_nchw(block, s, b0, b1, avx512, out_p);
      }
    });
    if (channels_last) return out.permute({0, 3, 1, 2}).to(x.scalar_type());
    return out.to(x.scalar_type());
  }

  auto out_nhwc = new_output({s.N, s.OH, s.OW, s.O}, x.options().dtype(at::kFloat));
  if (rows > 0 && s.O > 0) {
    auto win = new_output({s.window_floats()}, x_nhwc.options());
    float* win_p = win.data_ptr<float>();
    float* out_p = out_nhwc.data_ptr<float>();
    at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) { im2win_transform(x_p, s, r0, r1, win_p); });
    if (isa != Isa::kPortable) {
      // Many strips (deep layers, small images): threads split the strips and each strip is
      // expanded once. Few strips: threads split the rows and each expands the strips it needs.
      const bool split_strips = tasks >= 2 * threads;
      at::parallel_for(0, split_strips ? tasks : rows, 1, [&](int64_t t0, int64_t t1) {
        const int64_t first = split_strips ? t0 : 0, last = split_strips ? t1 : tasks;
        const int64_t r0 = split_strips ? 0 : t0, r1 = split_strips ? rows : t1;
        const int64_t chunk = std::min(strips_per_chunk, last - first);
        auto [strips, scratch] = thread_buffers(chunk);
        // A chunk of strips is expanded once; then each block of output rows, whose window
        // rows fit in L2, meets every strip of the chunk before the next block is read.
        for (int64_t c0 = first; c0 < last; c0 += chunk) {
          const int64_t c1 = std::min(last, c0 + chunk);
          expand_strips(c0, c1, strips, scratch);
          for (int64_t b0 = r0; b0 < r1; b0 += rows_per_block) {
            const int64_t b1 = std::min(r1, b0 + rows_per_block);
            for (int64_t t = c0; t < c1; ++t) {
              const int64_t g = t / strips_per_group, o0 = (t % strips_per_group) * width;
              const int64_t cols = std::min(width, Og - o0);
              init_bias(out_p + b0 * s.OW * s.O, (b1 - b0) * s.OW, g * Og + o0, cols);
              im2win_gemm_rows(avx512, win_p, 0, strips + (t - c0) * strip_floats, s, g, o0, cols, b0, b1, out_p, 0);
            }
          }
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
