// What every op binding (cpu/<op>/binding.cpp, cuda/<op>/binding.cpp) shares: argument checks,
// the BcqWeight view of tensors, output allocation. The Python layer raises ValueError/TypeError
// naming the argument before any op runs; these checks are the last line, so that a direct
// torch.ops call can never read out of bounds.
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <cstdlib>

#include "common/bcq_format.h"
#include "common/conv_shape.h"

namespace torch_lowbit {

// An environment switch: set and neither empty nor "0" (the rule torch_lowbit/_env.py uses).
inline bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && v[0] != '\0' && !(v[0] == '0' && v[1] == '\0');
}

// TORCH_LOWBIT_POISON=1 (the tests set it) fills every output with NaN before its kernel runs,
// so an element a kernel forgets to write shows up instead of passing as stale memory.
inline bool poison_outputs() {
  static const bool on = env_flag("TORCH_LOWBIT_POISON");
  return on;
}

// The kernels compute on contiguous fp32.
inline at::Tensor f32(const at::Tensor& t) { return t.to(at::kFloat).contiguous(); }

inline at::Tensor new_output(at::IntArrayRef sizes, const at::TensorOptions& options) {
  auto t = at::empty(sizes, options);
  if (poison_outputs()) t.fill_(NAN);
  return t;
}

inline void check_bcq(const at::Tensor& planes, const at::Tensor& alpha, const at::Tensor& offset,
                      int64_t K, int64_t G) {
  TORCH_CHECK(planes.scalar_type() == at::kByte && planes.dim() == 4 && planes.size(3) == kPanelRows,
              "planes: expected uint8 [bits, ceil(N/16), Kp/8, 16], got ", planes.scalar_type(), " ",
              planes.sizes());
  TORCH_CHECK(alpha.dim() == 3, "alpha: expected [bits, Kp/G, N], got ", alpha.sizes());
  const int64_t bits = planes.size(0), N = alpha.size(2), Kp = planes.size(2) * 8;
  TORCH_CHECK(planes.size(1) == (N + kPanelRows - 1) / kPanelRows, "planes: ", planes.size(1),
              " panels of 16 rows do not fit N = ", N, " (from alpha)");
  TORCH_CHECK(bits >= 1 && bits <= 8, "planes: bits must be 1..8, got ", bits);
  TORCH_CHECK(G > 0 && G % 8 == 0 && Kp % G == 0, "group_size: ", G,
              " must be a positive multiple of 8 dividing the padded K ", Kp);
  TORCH_CHECK(K > 0 && K <= Kp && Kp - K < G + 32, "in_features: ", K,
              " does not match planes padded to ", Kp);
  TORCH_CHECK(alpha.size(0) == bits && alpha.size(1) == Kp / G &&
                  alpha.size(2) == N,
              "alpha: expected [", bits, ", ", Kp / G, ", ", N, "], got ", alpha.sizes());
  TORCH_CHECK(offset.dim() == 2 && offset.size(0) == Kp / G && offset.size(1) == N,
              "offset: expected [", Kp / G, ", ", N, "], got ", offset.sizes());
  TORCH_CHECK((alpha.scalar_type() == at::kHalf || alpha.scalar_type() == at::kFloat) &&
                  offset.scalar_type() == alpha.scalar_type(),
              "alpha/offset: expected both float16 or both float32, got ", alpha.scalar_type(), " and ",
              offset.scalar_type());
  TORCH_CHECK(planes.device() == alpha.device() && planes.device() == offset.device(),
              "planes, alpha and offset must be on one device");
}

// A view of contiguous tensors (fp16 or fp32 scales, read as stored); callers keep them alive.
inline BcqWeight bcq_view(const at::Tensor& planes, const at::Tensor& alpha,
                          const at::Tensor& offset, int64_t K, int64_t G) {
  BcqWeight w;
  w.planes = planes.data_ptr<uint8_t>();
  w.alpha = alpha.data_ptr();
  w.offset = offset.data_ptr();
  w.half = alpha.scalar_type() == at::kHalf;
  w.bits = planes.size(0);
  w.N = alpha.size(2);
  w.K = K;
  w.Kp = planes.size(2) * 8;
  w.group_size = G;
  return w;
}

inline void check_activation(const at::Tensor& x, int64_t K, const at::Tensor& like) {
  TORCH_CHECK(x.dim() == 2, "x: expected 2-D [M, K], got ", x.sizes());
  TORCH_CHECK(x.size(1) == K, "x: expected K = ", K, " columns, got ", x.size(1));
  TORCH_CHECK(x.is_floating_point(), "x: expected a floating point tensor");
  TORCH_CHECK(x.device() == like.device(), "x and the weight must be on one device");
}

// Conv geometry values (weight dims, groups, stride, padding, dilation) stay below 2^31, so
// every product and sum of two of them fits int64: a raw call passing 2^62 gets an error, not
// a wrapped size.
constexpr int64_t kMaxConvValue = (int64_t{1} << 31) - 1;

inline void check_conv_values(at::IntArrayRef values, const char* name) {
  for (const int64_t v : values)
    TORCH_CHECK(v >= 0 && v <= kMaxConvValue, name, ": values must be in [0, 2^31), got ", values);
}

// Validates a conv call and returns its geometry (padding = top, bottom, left, right).
inline ConvShape conv_shape(const at::Tensor& x, at::IntArrayRef weight_shape,
                            at::IntArrayRef stride, at::IntArrayRef padding,
                            at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(x.dim() == 4, "x: expected 4-D [N, C, H, W], got ", x.sizes());
  TORCH_CHECK(x.is_floating_point(), "x: expected a floating point tensor");
  TORCH_CHECK(weight_shape.size() == 4, "weight: expected 4-D [O, C/groups, R, S]");
  TORCH_CHECK(stride.size() == 2 && padding.size() == 4 && dilation.size() == 2,
              "stride/dilation need 2 values, padding 4 (top, bottom, left, right)");
  check_conv_values(weight_shape, "weight_shape");
  check_conv_values(stride, "stride");
  check_conv_values(padding, "padding");
  check_conv_values(dilation, "dilation");
  TORCH_CHECK(groups >= 1 && groups <= kMaxConvValue, "groups: expected 1 to 2^31 - 1, got ", groups);
  ConvShape s;
  s.N = x.size(0); s.C = x.size(1); s.H = x.size(2); s.W = x.size(3);
  s.O = weight_shape[0]; s.R = weight_shape[2]; s.S = weight_shape[3]; s.groups = groups;
  s.sh = stride[0]; s.sw = stride[1]; s.pt = padding[0]; s.pl = padding[2];
  s.dh = dilation[0]; s.dw = dilation[1];
  TORCH_CHECK(groups >= 1 && s.C % groups == 0 && s.O % groups == 0 &&
                  weight_shape[1] * groups == s.C,
              "groups: ", groups, " does not fit input channels ", s.C, " and weight ",
              weight_shape);
  TORCH_CHECK(s.R >= 1 && s.S >= 1, "weight: empty kernel ", weight_shape);
  TORCH_CHECK(s.sh >= 1 && s.sw >= 1 && s.dh >= 1 && s.dw >= 1, "stride and dilation must be >= 1");
  TORCH_CHECK(padding[0] >= 0 && padding[1] >= 0 && padding[2] >= 0 && padding[3] >= 0,
              "padding must be >= 0");
  const int64_t eh = s.H + padding[0] + padding[1] - s.dh * (s.R - 1) - 1;
  const int64_t ew = s.W + padding[2] + padding[3] - s.dw * (s.S - 1) - 1;
  TORCH_CHECK(eh >= 0 && ew >= 0, "kernel (with dilation) is larger than the padded input");
  s.OH = eh / s.sh + 1;
  s.OW = ew / s.sw + 1;
  return s;
}

inline void check_bias(const std::optional<at::Tensor>& bias, const ConvShape& s,
                       const at::Tensor& x) {
  if (!bias) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == s.O, "bias: expected [", s.O, "], got ",
              bias->sizes());
  TORCH_CHECK(bias->device() == x.device(), "bias: expected on ", x.device());
}

// An optional linear bias [N] on x's device.
inline void check_linear_bias(const std::optional<at::Tensor>& bias, int64_t N, const at::Tensor& x) {
  if (!bias) return;
  TORCH_CHECK(bias->dim() == 1 && bias->size(0) == N && bias->is_floating_point(),
              "bias: expected a floating point [", N, "] tensor, got ", bias->sizes());
  TORCH_CHECK(bias->device() == x.device(), "bias: expected on ", x.device());
}

// A dense conv weight [O, C/groups, R, S] on x's device.
inline void check_conv_weight(const at::Tensor& weight, const at::Tensor& x) {
  TORCH_CHECK(weight.dim() == 4 && weight.is_floating_point(),
              "weight: expected a 4-D floating point [O, C/groups, R, S] tensor, got ",
              weight.sizes());
  TORCH_CHECK(weight.device() == x.device(), "weight: expected on ", x.device());
}

// A BCQ weight of flattened conv filters; returns its K = C/groups * R * S.
inline int64_t check_conv_bcq(const at::Tensor& planes, const at::Tensor& alpha,
                              const at::Tensor& offset, at::IntArrayRef weight_shape, int64_t G,
                              const at::Tensor& x) {
  TORCH_CHECK(weight_shape.size() == 4, "weight_shape: expected [O, C/groups, R, S]");
  check_conv_values(weight_shape, "weight_shape");
  int64_t K = 0;
  TORCH_CHECK(!__builtin_mul_overflow(weight_shape[1] * weight_shape[2], weight_shape[3], &K),
              "weight_shape: C/groups * R * S overflows, got ", weight_shape);
  check_bcq(planes, alpha, offset, K, G);
  TORCH_CHECK(alpha.size(2) == weight_shape[0], "alpha: ", alpha.size(2), " rows for ",
              weight_shape[0], " output channels");
  TORCH_CHECK(planes.device() == x.device(), "weight: expected on ", x.device());
  return K;
}

// True when x is channels_last (and not also plain contiguous, as 1x1 images are).
inline bool is_channels_last(const at::Tensor& x) {
  return x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous();
}

}  // namespace torch_lowbit
