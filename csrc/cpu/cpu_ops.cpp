// ATen wrappers for the CPU kernels: checks, dtype conversion (kernels compute in fp32,
// results come back in x's dtype), threading with at::parallel_for.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../ops_common.h"
#include "kernels.h"

namespace torch_lowbit {
namespace {

at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

at::Tensor bcq_dequantize_cpu(const at::Tensor& planes, const at::Tensor& alpha,
                              const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  const auto p = planes.contiguous();
  const auto a = f32(alpha), o = f32(offset);
  const BcqWeight w = bcq_view(p, a, o, K, G);
  auto out = new_output({w.N, K}, alpha.options().dtype(at::kFloat));
  float* dst = out.data_ptr<float>();
  at::parallel_for(0, w.N, 16, [&](int64_t n0, int64_t n1) {
    cpu::bcq_dequantize_block(w, n0, n1, 0, K, dst + n0 * K, K);
  });
  return out.to(alpha.scalar_type());
}

at::Tensor lut_gemm_cpu(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                        const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const auto p = planes.contiguous();
  const auto a = f32(alpha), o = f32(offset), xf = f32(x);
  const BcqWeight w = bcq_view(p, a, o, K, G);
  const int64_t M = x.size(0);
  auto y = new_output({M, w.N}, x.options().dtype(at::kFloat));
  if (M == 0) return y.to(x.scalar_type());
  // Tables for a block of rows at a time: Kp/8 * 256 floats per row.
  constexpr int64_t kRowsPerBlock = 8;
  const int64_t table_stride = w.row_bytes() * cpu::kLutEntries;
  std::vector<float> tables(kRowsPerBlock * table_stride), sums(kRowsPerBlock * w.ngroups());
  for (int64_t m0 = 0; m0 < M; m0 += kRowsPerBlock) {
    const int64_t mb = std::min(kRowsPerBlock, M - m0);
    at::parallel_for(0, mb, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        cpu::lut_build_tables(xf.data_ptr<float>() + (m0 + i) * K, K, w.Kp, G,
                              tables.data() + i * table_stride, sums.data() + i * w.ngroups());
    });
    float* yb = y.data_ptr<float>() + m0 * w.N;
    at::parallel_for(0, w.N, 64, [&](int64_t n0, int64_t n1) {
      cpu::lut_gemm_rows(tables.data(), sums.data(), mb, w, n0, n1, yb);
    });
  }
  return y.to(x.scalar_type());
}

template <typename TileFn>
at::Tensor run_tiled(const at::Tensor& x, int64_t N, TileFn tile_fn) {
  const int64_t M = x.size(0);
  auto y = new_output({M, N}, x.options().dtype(at::kFloat));
  const int64_t tiles = (N + cpu::kGemmTileN - 1) / cpu::kGemmTileN;
  at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scratch(cpu::kGemmTileN * cpu::kGemmTileK);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * cpu::kGemmTileN;
      tile_fn(n0, std::min(N, n0 + cpu::kGemmTileN), y.data_ptr<float>(), scratch.data());
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
  return run_tiled(x, N, [&](int64_t n0, int64_t n1, float* y, float* scratch) {
    cpu::tiled_gemm_dense_tile(xf.data_ptr<float>(), M, K, wf.data_ptr<float>(), N, n0, n1, y,
                               scratch);
  });
}

at::Tensor tiled_gemm_bcq_cpu(const at::Tensor& x, const at::Tensor& planes,
                              const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                              int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const auto p = planes.contiguous();
  const auto a = f32(alpha), o = f32(offset), xf = f32(x);
  const BcqWeight w = bcq_view(p, a, o, K, G);
  return run_tiled(x, w.N, [&](int64_t n0, int64_t n1, float* y, float* scratch) {
    cpu::tiled_gemm_bcq_tile(xf.data_ptr<float>(), x.size(0), w, n0, n1, y, scratch);
  });
}

// TileFn(g, o0, ob, tile, row_scratch) fills one weight tile [S][R][Cg][ob].
template <typename TileFn>
at::Tensor run_im2win(const at::Tensor& x, at::IntArrayRef weight_shape,
                      const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      TileFn tile_fn) {
  const ConvShape s = conv_shape(x, weight_shape, stride, padding, dilation, groups);
  check_bias(bias, s, x);
  const bool channels_last = is_channels_last(x);
  const auto x_nhwc = x.to(at::kFloat).permute({0, 2, 3, 1}).contiguous();
  const auto bias_f = bias ? f32(*bias) : at::Tensor();
  auto out_nhwc = new_output({s.N, s.OH, s.OW, s.O}, x.options().dtype(at::kFloat));
  const int64_t rows = s.N * s.OH;
  if (rows > 0 && s.O > 0) {
    auto win = new_output({s.window_floats()}, x_nhwc.options());
    at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
      cpu::im2win_transform(x_nhwc.data_ptr<float>(), s, r0, r1, win.data_ptr<float>());
    });
    const int64_t Og = s.Og();
    const int64_t tile_floats = s.S * s.R * s.Cg() * cpu::kConvTileO;
    // Each thread expands every weight tile itself (never the whole weight), then sweeps its rows.
    at::parallel_for(0, rows, 1, [&](int64_t r0, int64_t r1) {
      std::vector<float> tile(tile_floats), row_scratch(s.Cg() * s.R * s.S);
      for (int64_t g = 0; g < groups; ++g) {
        for (int64_t o0 = 0; o0 < Og; o0 += cpu::kConvTileO) {
          const int64_t ob = std::min(cpu::kConvTileO, Og - o0);
          tile_fn(s, g, o0, ob, tile.data(), row_scratch.data());
          cpu::im2win_compute_tile(win.data_ptr<float>(), tile.data(),
                                   bias ? bias_f.data_ptr<float>() : nullptr, s, g, o0, ob, r0,
                                   r1, out_nhwc.data_ptr<float>());
        }
      }
    });
  }
  auto out = out_nhwc.permute({0, 3, 1, 2}).to(x.scalar_type());
  return channels_last ? out.contiguous(at::MemoryFormat::ChannelsLast) : out.contiguous();
}

at::Tensor im2win_conv2d_cpu(const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(weight.dim() == 4 && weight.is_floating_point(),
              "weight: expected a 4-D floating point [O, C/groups, R, S] tensor, got ",
              weight.sizes());
  TORCH_CHECK(weight.device() == x.device(), "weight: expected on ", x.device());
  const auto wf = f32(weight);
  return run_im2win(x, weight.sizes(), bias, stride, padding, dilation, groups,
                    [&](const ConvShape& s, int64_t g, int64_t o0, int64_t ob, float* tile,
                        float*) { cpu::im2win_weight_tile_dense(wf.data_ptr<float>(), s, g, o0, ob, tile); });
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
  const auto a = f32(alpha), o = f32(offset);
  const BcqWeight w = bcq_view(p, a, o, K, G);
  return run_im2win(x, weight_shape, bias, stride, padding, dilation, groups,
                    [&](const ConvShape& s, int64_t g, int64_t o0, int64_t ob, float* tile,
                        float* row_scratch) {
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
