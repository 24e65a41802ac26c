// torch_lowbit::im2win_conv2d and im2win_conv2d_bcq on CUDA tensors (schemas:
// torch_lowbit/library.py): the window buffer, then one implicit-GEMM kernel over it.
#include <torch/library.h>

#include "cuda/common/binding_utils.h"

namespace torch_lowbit {
namespace cuda {
namespace {

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
  check_launch(im2win_transform(x_nhwc.data_ptr<float>(), s, win.data_ptr<float>(),
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
  check_conv_weight(weight, x);
  const auto wf = f32(weight);
  return run_im2win(x, weight.sizes(), bias, stride, padding, dilation, groups,
                    [&](const ConvShape& s, const float* win, const float* b, float* out) {
                      return im2win_conv_dense(win, wf.data_ptr<float>(), b, s, out,
                                                     stream());
                    });
}

at::Tensor im2win_conv2d_bcq_cuda(const at::Tensor& x, const at::Tensor& planes,
                                  const at::Tensor& alpha, const at::Tensor& offset,
                                  at::IntArrayRef weight_shape, int64_t G,
                                  const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                  at::IntArrayRef padding, at::IntArrayRef dilation,
                                  int64_t groups) {
  const int64_t K = check_conv_bcq(planes, alpha, offset, weight_shape, G, x);
  const c10::cuda::CUDAGuard guard(x.device());
  BcqOnDevice w(planes, alpha, offset, K, G);
  return run_im2win(x, weight_shape, bias, stride, padding, dilation, groups,
                    [&](const ConvShape& s, const float* win, const float* b, float* out) {
                      return im2win_conv_bcq(win, w.view, b, s, out, stream());
                    });
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(torch_lowbit, CUDA, m) {
  m.impl("im2win_conv2d", &cuda::im2win_conv2d_cuda);
  m.impl("im2win_conv2d_bcq", &cuda::im2win_conv2d_bcq_cuda);
}

}  // namespace torch_lowbit
