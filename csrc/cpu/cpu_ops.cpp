// ATen wrappers for the CPU kernels: checks, dtype conversion (kernels compute in fp32,
// results come back in x's dtype), threading with at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../ops_common.h"
#include "isa.h"
#include "kernels.h"

namespace torch_lowbit {
namespace {

at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

at::Tensor bcq_dequantize_cpu(const at::Tensor& planes, const at::Tensor& alpha,
                              const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  auto out = new_output({w.N, K}, alpha.options().dtype(at::kFloat));
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, w.N, 16, [&](int64_t n0, int64_t n1) {
    cpu::bcq_dequantize_block(w, n0, n1, 0, K, dst + n0 * K, K);
  });
  return out.to(alpha.scalar_type());
}

// LUT-GEMM: tables for a block of activation rows, then threads over 16-row panels (SIMD) or
// rows (portable). The SIMD paths use 16-entry tables (mu = 4); the portable path 256-entry
// tables (mu = 8), which cost fewer adds per weight byte when there is no vector lookup.
at::Tensor lut_gemm_cpu(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                        const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const auto xf = f32(x);
  const BcqWeight w = bcq_view(p, a, o, K, G);
  const int64_t M = x.size(0);
  auto y = new_output({M, w.N}, x.options().dtype(at::kFloat));
  if (M == 0) return y.to(x.scalar_type());
  const cpu::Isa isa = cpu::active_isa();
  const bool simd = isa != cpu::Isa::kPortable;
  constexpr int64_t kRowsPerBlock = 8;
  const int64_t table_stride = simd ? (w.Kp / 4) * cpu::kLut16Entries : w.row_bytes() * cpu::kLutEntries;
  std::vector<float> tables(kRowsPerBlock * table_stride), sums(kRowsPerBlock * w.ngroups());
  for (int64_t m0 = 0; m0 < M; m0 += kRowsPerBlock) {
    const int64_t mb = std::min(kRowsPerBlock, M - m0);
    at::parallel_for(0, mb, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const float* xr = xf.data_ptr<float>() + (m0 + i) * K;
        float* t = tables.data() + i * table_stride;
        float* gs = sums.data() + i * w.ngroups();
        if (simd)
          cpu::lut16_build_tables(xr, K, w.Kp, G, t, gs);
        else
          cpu::lut_build_tables(xr, K, w.Kp, G, t, gs);
      }
    });
    float* yb = y.data_ptr<float>() + m0 * w.N;
    if (simd) {
      at::parallel_for(0, w.panels(), 4, [&](int64_t p0, int64_t p1) {
        if (isa >= cpu::Isa::kAvx512)
          cpu::lut_gemm_panels_avx512(tables.data(), sums.data(), mb, w, p0, p1, yb);
        else
          cpu::lut_gemm_panels_avx2(tables.data(), sums.data(), mb, w, p0, p1, yb);
      });
    } else {
      at::parallel_for(0, w.N, 64, [&](int64_t n0, int64_t n1) {
        cpu::lut_gemm_rows(tables.data(), sums.data(), mb, w, n0, n1, yb);
      });
    }
  }
  return y.to(x.scalar_type());
}

// Threads over column tiles of y; tile_fn(isa, n0, n1, y, scratch) computes one.
template <typename TileFn>
at::Tensor run_tiled(const at::Tensor& x, int64_t N, TileFn tile_fn) {
  const int64_t M = x.size(0);
  auto y = new_output({M, N}, x.options().dtype(at::kFloat));
  const cpu::Isa isa = cpu::active_isa();
  const bool simd = isa != cpu::Isa::kPortable;
  int64_t tile_n = simd ? cpu::kSimdTileN : cpu::kGemmTileN;
  // Enough tiles for every thread when N is small (tiles stay multiples of 32 columns).
  const int64_t threads = at::get_num_threads();
  while (tile_n > 32 && (N + tile_n - 1) / tile_n < 2 * threads) tile_n /= 2;
  const int64_t scratch_floats = simd ? cpu::kSimdTileN * cpu::kSimdTileK : cpu::kGemmTileN * cpu::kGemmTileK;
  const int64_t tiles = (N + tile_n - 1) / tile_n;
  at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scratch(scratch_floats);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * tile_n;
      tile_fn(isa, n0, std::min(N, n0 + tile_n), y.data_ptr<float>(), scratch.data());
    }
  });
  return y.to(x.scalar_type());
}

at::Tensor tiled_gemm_cpu(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.is_floating_point(),
              "weight: expected a 2-D floating point [N, K] tensor, got ", weight.sizes());
  check_activation(x, weight.size(1), weight);
  const auto xf = f32(x), wf = f32(weight);
  const int64_t M = x.size(0), K = x.size(1), N = weight.size(0);
  const float* xp = xf.data_ptr<float>();
  const float* wp = wf.data_ptr<float>();
  return run_tiled(x, N, [&](cpu::Isa isa, int64_t n0, int64_t n1, float* y, float* scratch) {
    if (isa != cpu::Isa::kPortable)
      cpu::tiled_gemm_dense_simd(isa >= cpu::Isa::kAvx512, xp, M, K, wp, N, n0, n1, y, scratch);
    else
      for (int64_t t = n0; t < n1; t += cpu::kGemmTileN)
        cpu::tiled_gemm_dense_tile(xp, M, K, wp, N, t, std::min(n1, t + cpu::kGemmTileN), y, scratch);
  });
}

// bf16 activations on AMX: x padded with zeros to [multiple of 32 rows][Kp], threads over
// 64-column tiles of y, each expanding its weight rows once into bf16 for the whole K.
at::Tensor tiled_gemm_bcq_amx(const at::Tensor& x, const BcqWeight& w) {
  const int64_t M = x.size(0), Mp = (M + 31) / 32 * 32;
  auto xp = at::zeros({Mp, w.Kp}, x.options());
  xp.narrow(0, 0, M).narrow(1, 0, w.K).copy_(x);
  auto y = new_output({M, w.N}, x.options().dtype(at::kFloat));
  const auto* xb = reinterpret_cast<const uint16_t*>(xp.data_ptr<at::BFloat16>());
  float* yp = y.data_ptr<float>();
  const int64_t tiles = (w.N + cpu::kAmxTileN - 1) / cpu::kAmxTileN;
  at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<uint16_t> scratch(cpu::kAmxTileN * w.Kp);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * cpu::kAmxTileN;
      cpu::tiled_gemm_bcq_amx(xb, Mp, w, n0, std::min(w.N, n0 + cpu::kAmxTileN), yp, M, scratch.data());
    }
  });
  return y.to(x.scalar_type());
}

at::Tensor tiled_gemm_bcq_cpu(const at::Tensor& x, const at::Tensor& planes,
                              const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                              int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  const int64_t M = x.size(0);
  if (cpu::active_isa() == cpu::Isa::kAmx && x.scalar_type() == at::kBFloat16 && M > 0)
    return tiled_gemm_bcq_amx(x, w);  // reads x as bf16: no fp32 copy
  const auto xf = f32(x);
  const float* xp = xf.data_ptr<float>();
  return run_tiled(x, w.N, [&](cpu::Isa isa, int64_t n0, int64_t n1, float* y, float* scratch) {
    if (isa != cpu::Isa::kPortable)
      cpu::tiled_gemm_bcq_simd(isa >= cpu::Isa::kAvx512, xp, M, w, n0, n1, y, scratch);
    else
      for (int64_t t = n0; t < n1; t += cpu::kGemmTileN)
        cpu::tiled_gemm_bcq_tile(xp, M, w, t, std::min(n1, t + cpu::kGemmTileN), y, scratch);
  });
}

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
  if (is_channels_last(x) || !x.is_contiguous() || cpu::active_isa() < cpu::Isa::kAvx512)
    return x.permute({0, 2, 3, 1}).contiguous();
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  auto out = at::empty({N, x.size(2), x.size(3), C}, x.options());
  const float* src = x.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  per_pixel_block(N, HW, [&](int64_t n, int64_t p0, int64_t count) {
    cpu::transpose_avx512(src + n * C * HW + p0, HW, C, count, dst + (n * HW + p0) * C, C);
  });
  return out;
}

at::Tensor nhwc_to_nchw(const at::Tensor& y) {  // y contiguous fp32 [N, H, W, C] -> [N, C, H, W]
  if (cpu::active_isa() < cpu::Isa::kAvx512) return y.permute({0, 3, 1, 2}).contiguous();
  const int64_t N = y.size(0), C = y.size(3), HW = y.size(1) * y.size(2);
  auto out = at::empty({N, C, y.size(1), y.size(2)}, y.options());
  const float* src = y.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  per_pixel_block(N, HW, [&](int64_t n, int64_t p0, int64_t count) {
    cpu::transpose_avx512(src + (n * HW + p0) * C, C, count, C, dst + n * C * HW + p0, HW);
  });
  return out;
}

// The SIMD paths run each output row as a GEMM over overlapping window rows against strips of
// the group's filters (strip_fn(s, avx512, g, o0, width, strip, scratch) fills one, expanding
// low-bit weights per strip); the portable path uses 16-channel tiles (tile_fn(s, g, o0, ob,
// tile, row_scratch)). Each thread expands the weights it needs itself: never the whole weight.
template <typename StripFn, typename TileFn>
at::Tensor run_im2win(const at::Tensor& x, at::IntArrayRef weight_shape,
                      const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      StripFn strip_fn, TileFn tile_fn) {
  const ConvShape s = conv_shape(x, weight_shape, stride, padding, dilation, groups);
  check_bias(bias, s, x);
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
      cpu::im2win_transform(x_nhwc.data_ptr<float>(), s, r0, r1, win.data_ptr<float>());
    });
    const int64_t Og = s.Og(), Kwin = s.S * s.R * s.Cg();
    const cpu::Isa isa = cpu::active_isa();
    if (isa != cpu::Isa::kPortable) {
      const bool avx512 = isa >= cpu::Isa::kAvx512;
      const int64_t width = avx512 ? cpu::kStripColsAvx512 : cpu::kStripColsAvx2;
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
          cpu::im2win_gemm_rows(avx512, win_p, strip, s, g, o0, cols, r0, r1, out_p);
        }
      });
    } else {
      at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
        std::vector<float> tile(Kwin * cpu::kConvTileO), row_scratch(Kwin);
        for (int64_t g = 0; g < groups; ++g)
          for (int64_t o0 = 0; o0 < Og; o0 += cpu::kConvTileO) {
            const int64_t ob = std::min(cpu::kConvTileO, Og - o0);
            tile_fn(s, g, o0, ob, tile.data(), row_scratch.data());
            cpu::im2win_compute_tile_portable(win_p, tile.data(), bias_p, s, g, o0, ob, r0, r1, out_p);
          }
      });
    }
  }
  if (channels_last) return out_nhwc.permute({0, 3, 1, 2}).to(x.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
  return nhwc_to_nchw(out_nhwc).to(x.scalar_type());
}

at::Tensor im2win_conv2d_cpu(const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(weight.dim() == 4 && weight.is_floating_point(),
              "weight: expected a 4-D floating point [O, C/groups, R, S] tensor, got ",
              weight.sizes());
  TORCH_CHECK(weight.device() == x.device(), "weight: expected on ", x.device());
  const auto w_oihw = f32(weight).contiguous();
  const float* wp = w_oihw.data_ptr<float>();
  // AVX-512 packs each strip straight from the [O][Cg][R][S] filters (16 x 16 transposes, then
  // k rows moved to window order inside the L2-sized strip). The other paths read filters
  // permuted to window order [O][S][R][Cg] once per call: a full extra pass over the weight
  // (for ResNet-50's res5, 9.4 MB, about as long as the convolution itself at batch 1).
  const bool direct = cpu::active_isa() >= cpu::Isa::kAvx512;
  const auto w_window = direct ? at::Tensor() : w_oihw.permute({0, 3, 2, 1}).contiguous();
  const float* wwp = direct ? nullptr : w_window.data_ptr<float>();
  return run_im2win(
      x, weight.sizes(), bias, stride, padding, dilation, groups,
      [&](const ConvShape& s, bool avx512, int64_t g, int64_t o0, int64_t width, float* strip,
          float* scratch) {
        const int64_t K = s.S * s.R * s.Cg();
        if (direct) {  // AVX-512: width is kStripColsAvx512
          cpu::pack_strip_avx512(wp + (g * s.Og() + o0) * K, K, std::min(width, s.Og() - o0), K, scratch);
          cpu::im2win_strip_to_window(scratch, s, width, strip);
        } else {
          cpu::im2win_strip_dense(wwp, s, g, o0, width, strip);
        }
      },
      [&](const ConvShape& s, int64_t g, int64_t o0, int64_t ob, float* tile, float*) {
        cpu::im2win_strip_dense(wwp, s, g, o0, ob, tile);
      });
}

at::Tensor im2win_conv2d_bcq_cpu(const at::Tensor& x, const at::Tensor& planes,
                                 const at::Tensor& alpha, const at::Tensor& offset,
                                 at::IntArrayRef weight_shape, int64_t G,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation,
                                 int64_t groups) {
  TORCH_CHECK(weight_shape.size() == 4, "weight_shape: expected [O, C/groups, R, S]");
  const int64_t K = weight_shape[1] * weight_shape[2] * weight_shape[3];
  check_bcq(planes, alpha, offset, K, G);
  TORCH_CHECK(alpha.size(2) == weight_shape[0], "alpha: ", alpha.size(2), " rows for ", weight_shape[0], " output channels");
  TORCH_CHECK(planes.device() == x.device(), "weight: expected on ", x.device());
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  return run_im2win(
      x, weight_shape, bias, stride, padding, dilation, groups,
      [&](const ConvShape& s, bool avx512, int64_t g, int64_t o0, int64_t width, float* strip,
          float* scratch) { cpu::im2win_strip_bcq(avx512, w, s, g, o0, width, strip, scratch); },
      [&](const ConvShape& s, int64_t g, int64_t o0, int64_t ob, float* tile, float* row_scratch) {
        cpu::im2win_weight_tile_bcq(w, s, g, o0, ob, tile, row_scratch);
      });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) {
  m.impl("bcq_dequantize", &bcq_dequantize_cpu);
  m.impl("lut_gemm", &lut_gemm_cpu);
  m.impl("tiled_gemm", &tiled_gemm_cpu);
  m.impl("tiled_gemm_bcq", &tiled_gemm_bcq_cpu);
  m.impl("im2win_conv2d", &im2win_conv2d_cpu);
  m.impl("im2win_conv2d_bcq", &im2win_conv2d_bcq_cpu);
}

}  // namespace torch_lowbit
