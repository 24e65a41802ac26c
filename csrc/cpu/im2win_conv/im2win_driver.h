// The CPU im2win conv drivers the binding calls (after its checks): x NCHW or channels_last in
// any float dtype; the result has x's dtype and memory format.
#pragma once
#include <ATen/ATen.h>

#include <optional>

#include "common/bcq_format.h"
#include "common/conv_shape.h"

namespace torch_lowbit {
namespace cpu {

at::Tensor im2win_conv2d_dense(const at::Tensor& x, const at::Tensor& weight, const ConvShape& s,
                               const std::optional<at::Tensor>& bias);
// w: a view of the flattened filters [O, C/groups * R * S] (kept alive by the caller).
at::Tensor im2win_conv2d_bcq(const at::Tensor& x, const BcqWeight& w, const ConvShape& s,
                             const std::optional<at::Tensor>& bias);

}  // namespace cpu
}  // namespace torch_lowbit
