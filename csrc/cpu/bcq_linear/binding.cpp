// torch_lowbit::bcq_linear on CPU tensors (schema: torch_lowbit/library.py): the kernel the
// selector (cpu/kernel_selector.h) picks for this row count, bit width, ISA and dtype.
#include <torch/library.h>

#include "common/checks.h"
#include "cpu/bindings.h"
#include "cpu/kernel_selector.h"

namespace torch_lowbit {
namespace cpu {
namespace {

// y[m, n] += bias[n] in place: a plain loop, where ATen's add_ costs ~5 us of setup a call
// (as much as a small layer's whole product).
void add_bias(at::Tensor& y, const at::Tensor& bias) {
  const auto b = f32(bias);
  const float* bp = b.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const int64_t M = y.size(0), N = y.size(1);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) yp[m * N + n] += bp[n];
}

at::Tensor bcq_linear_cpu(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                          const at::Tensor& offset, int64_t K, int64_t G,
                          const std::optional<at::Tensor>& bias) {
  check_bcq(planes, alpha, offset, K, G);  // before any size() below: raw calls can pass anything
  check_activation(x, K, planes);
  check_linear_bias(bias, alpha.size(2), x);
  const auto kernel = select_bcq_linear(x.size(0), planes.size(0), alpha.size(2) * K, active_isa(),
                                        x.scalar_type() == at::kBFloat16, lut_tables(), lut_lookup(),
                                        [&] { return bcq_weight_uniform(planes, alpha, offset, K, G); });
  auto y = kernel == BcqLinearKernel::kLut        ? lut_gemm_f32(x, planes, alpha, offset, K, G)
           : kernel == BcqLinearKernel::kDense    ? dense_gemm_bcq_f32(x, planes, alpha, offset, K, G)
           : kernel == BcqLinearKernel::kInt8Gemm ? int8_gemm_bcq_f32(x, planes, alpha, offset, K, G)
                                                  : tiled_gemm_bcq_f32(x, planes, alpha, offset, K, G);
  if (bias) add_bias(y, *bias);
  return y.to(x.scalar_type());
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) { m.impl("bcq_linear", &cpu::bcq_linear_cpu); }

}  // namespace torch_lowbit
