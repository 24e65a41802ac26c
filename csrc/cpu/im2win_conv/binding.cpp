// torch_lowbit::im2win_conv2d (dense filters) and im2win_conv2d_bcq (low-bit filters) on CPU
// tensors (schemas: torch_lowbit/library.py).
#include <torch/library.h>

#include "common/checks.h"
#include "cpu/im2win_conv/im2win_driver.h"

namespace torch_lowbit {
namespace {

at::Tensor im2win_conv2d_cpu(const at::Tensor& x, const at::Tensor& weight,
                             const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                             at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  check_conv_weight(weight, x);
  const ConvShape s = conv_shape(x, weight.sizes(), stride, padding, dilation, groups);
  check_bias(bias, s, x);
  return cpu::im2win_conv2d_dense(x, weight, s, bias);
}

at::Tensor im2win_conv2d_bcq_cpu(const at::Tensor& x, const at::Tensor& planes,
                                 const at::Tensor& alpha, const at::Tensor& offset,
                                 at::IntArrayRef weight_shape, int64_t G,
                                 const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
                                 at::IntArrayRef padding, at::IntArrayRef dilation,
                                 int64_t groups) {
  const int64_t K = check_conv_bcq(planes, alpha, offset, weight_shape, G, x);
  const ConvShape s = conv_shape(x, weight_shape, stride, padding, dilation, groups);
  check_bias(bias, s, x);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  return cpu::im2win_conv2d_bcq(x, bcq_view(p, a, o, K, G), s, bias);
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) {
  m.impl("im2win_conv2d", &im2win_conv2d_cpu);
  m.impl("im2win_conv2d_bcq", &im2win_conv2d_bcq_cpu);
}

}  // namespace torch_lowbit
