// ATen wrappers for the CUDA kernels (compiled by the host compiler; the .cu files stay free of
// torch headers). Activations are converted to fp32 for the kernels and back to x's dtype.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "../ops_common.h"
#include "launchers.h"

namespace torch_lowbit {
namespace {

at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "torch_lowbit CUDA kernel ", what,
              " failed to launch: ", cudaGetErrorString(err));
}

cudaStream_t stream() { return at::cuda::getCurrentCUDAStream().stream(); }

struct BcqOnDevice {
  at::Tensor planes, alpha, offset;
  BcqWeight view;
  BcqOnDevice(const at::Tensor& p, const at::Tensor& a, const at::Tensor& o, int64_t K, int64_t G)
      : planes(p.contiguous()), alpha(a.contiguous()), offset(o.contiguous()),
        view(bcq_view(planes, alpha, offset, K, G)) {}
};

at::Tensor bcq_dequantize_cuda(const at::Tensor& planes, const at::Tensor& alpha,
                               const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  const c10::cuda::CUDAGuard guard(planes.device());
  BcqOnDevice w(planes, alpha, offset, K, G);
  auto out = new_output({w.view.N, K}, alpha.options().dtype(at::kFloat));
  check_launch(cuda::bcq_dequantize(w.view, out.data_ptr<float>(), stream()), "bcq_dequantize");
  return out.to(alpha.scalar_type());
}

cuda::ActType act_type(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kHalf: return cuda::ActType::kFloat16;
    case at::kBFloat16: return cuda::ActType::kBFloat16;
    case at::kFloat: return cuda::ActType::kFloat32;
    default: TORCH_CHECK(false, "x: expected float32, float16 or bfloat16, got ", x.scalar_type());
  }
}

at::Tensor lut_gemm_cuda(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                         const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const c10::cuda::CUDAGuard guard(x.device());
  // The kernel reads 4 rows of a panel as one 32-bit word.
  BcqOnDevice w(reinterpret_cast<uintptr_t>(planes.data_ptr()) % 4 ? planes.clone() : planes, alpha, offset, K, G);
  const auto xc = x.contiguous();
  const int64_t M = x.size(0);
  auto y = new_output({M, w.view.N}, x.options());
  const int sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
  const cuda::LutPlan plan = cuda::lut_gemm_plan(M, w.view, sms);
  at::Tensor workspace;
  if (plan.splits > 1) workspace = at::empty({plan.splits, M, w.view.N}, x.options().dtype(at::kFloat));
  check_launch(cuda::lut_gemm(xc.data_ptr(), act_type(x), M, w.view, plan, y.data_ptr(),
                              plan.splits > 1 ? workspace.data_ptr<float>() : nullptr, stream()),
               "lut_gemm");
  return y;
}

// fp32 runs the SIMT kernel (exact fp32 products); fp16/bf16 the tensor-core kernel.
at::Tensor tiled_gemm_cuda(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.is_floating_point(),
              "weight: expected a 2-D floating point [N, K] tensor, got ", weight.sizes());
  check_activation(x, weight.size(1), weight);
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t M = x.size(0), K = x.size(1), N = weight.size(0);
  if (x.scalar_type() == at::kFloat) {
    const auto xf = f32(x), wf = f32(weight);
    auto y = new_output({M, N}, x.options());
    check_launch(cuda::tiled_gemm_dense(xf.data_ptr<float>(), M, K, wf.data_ptr<float>(), N,
                                        y.data_ptr<float>(), stream()),
                 "tiled_gemm");
    return y;
  }
  const auto xc = x.contiguous(), wc = weight.to(x.scalar_type()).contiguous();
  auto y = new_output({M, N}, x.options());
  check_launch(cuda::tc_gemm_dense(xc.data_ptr(), act_type(x), M, K, wc.data_ptr(), N, y.data_ptr(),
                                   stream()),
               "tiled_gemm (tensor cores)");
  return y;
}

at::Tensor tiled_gemm_bcq_cuda(const at::Tensor& x, const at::Tensor& planes,
                               const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                               int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const c10::cuda::CUDAGuard guard(x.device());
  BcqOnDevice w(planes, alpha, offset, K, G);
  const int64_t M = x.size(0);
  auto y = new_output({M, w.view.N}, x.options());
  if (x.scalar_type() == at::kFloat) {
    const auto xf = f32(x);
    check_launch(cuda::tiled_gemm_bcq(xf.data_ptr<float>(), M, w.view, y.data_ptr<float>(), stream()),
                 "tiled_gemm_bcq");
    return y;
  }
  const auto xc = x.contiguous();
  check_launch(cuda::tc_gemm_bcq(xc.data_ptr(), act_type(x), M, w.view, y.data_ptr(), stream()),
               "tiled_gemm_bcq (tensor cores)");
  return y;
}

// Conv(win, out) launches the conv kernel over the prepared window buffer.
template <typename Conv>
at::Tensor run_im2win(const at::Tensor& x, at::IntArrayRef weight_shape,
                      const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                      at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
                      Conv conv) {
  const ConvShape s = conv_shape(x, weight_shape, stride, padding, dilation, groups);
  check_bias(bias, s, x);
  const c10::cuda::CUDAGuard guard(x.device());
  const auto x_nhwc = x.to(at::kFloat).permute({0, 2, 3, 1}).contiguous();
  const auto bias_f = bias ? f32(*bias) : at::Tensor();
  auto out_nhwc = new_output({s.N, s.OH, s.OW, s.O}, x.options().dtype(at::kFloat));
  auto win = new_output({s.window_floats()}, x_nhwc.options());
  check_launch(cuda::im2win_transform(x_nhwc.data_ptr<float>(), s, win.data_ptr<float>(),
                                      stream()),
               "im2win_transform");
  check_launch(conv(s, win.data_ptr<float>(), bias ? bias_f.data_ptr<float>() : nullptr,
                    out_nhwc.data_ptr<float>()),
               "im2win_conv");
  auto out = out_nhwc.permute({0, 3, 1, 2}).to(x.scalar_type());
  return is_channels_last(x) ? out.contiguous(at::MemoryFormat::ChannelsLast) : out.contiguous();
}

at::Tensor im2win_conv2d_cuda(const at::Tensor& x, const at::Tensor& weight,
                              const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                              at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(weight.dim() == 4 && weight.is_floating_point(),
              "weight: expected a 4-D floating point [O, C/groups, R, S] tensor, got ",
              weight.sizes());
  TORCH_CHECK(weight.device() == x.device(), "weight: expected on ", x.device());
  const auto wf = f32(weight);
  return run_im2win(x, weight.sizes(), bias, stride, padding, dilation, groups,
                    [&](const ConvShape& s, const float* win, const float* b, float* out) {
                      return cuda::im2win_conv_dense(win, wf.data_ptr<float>(), b, s, out,
                                                     stream());
                    });
}

at::Tensor im2win_conv2d_bcq_cuda(const at::Tensor& x, const at::Tensor& planes,
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
  const c10::cuda::CUDAGuard guard(x.device());
  BcqOnDevice w(planes, alpha, offset, K, G);
  return run_im2win(x, weight_shape, bias, stride, padding, dilation, groups,
                    [&](const ConvShape& s, const float* win, const float* b, float* out) {
                      return cuda::im2win_conv_bcq(win, w.view, b, s, out, stream());
                    });
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_lowbit, CUDA, m) {
  m.impl("bcq_dequantize", &bcq_dequantize_cuda);
  m.impl("lut_gemm", &lut_gemm_cuda);
  m.impl("tiled_gemm", &tiled_gemm_cuda);
  m.impl("tiled_gemm_bcq", &tiled_gemm_bcq_cuda);
  m.impl("im2win_conv2d", &im2win_conv2d_cuda);
  m.impl("im2win_conv2d_bcq", &im2win_conv2d_bcq_cuda);
}

}  // namespace torch_lowbit
