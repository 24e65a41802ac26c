// torch_lowbit::bcq_linear on CUDA tensors (schema: torch_lowbit/library.py): LUT-GEMM for few
// rows, the tiled GEMM beyond. rows * bits <= 96 is a placeholder until a GPU run measures the
// crossover (benchmarks/gpu_kernels.py).
#include <torch/library.h>

#include "cuda/common/binding_utils.h"

namespace torch_lowbit {
namespace cuda {
namespace {

constexpr int64_t kLutMaxRowBits = 96;

// The kernels write y in x's dtype, so the bias is added there (the CPU adds it in fp32).
at::Tensor bcq_linear_cuda(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                           const at::Tensor& offset, int64_t K, int64_t G,
                           const std::optional<at::Tensor>& bias) {
  check_bcq(planes, alpha, offset, K, G);  // before any size() below: raw calls can pass anything
  check_activation(x, K, planes);
  check_linear_bias(bias, alpha.size(2), x);
  auto y = x.size(0) * planes.size(0) <= kLutMaxRowBits ? lut_gemm_cuda(x, planes, alpha, offset, K, G)
                                                        : tiled_gemm_bcq_cuda(x, planes, alpha, offset, K, G);
  if (bias) y.add_(bias->to(y.scalar_type()));
  return y;
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(torch_lowbit, CUDA, m) { m.impl("bcq_linear", &cuda::bcq_linear_cuda); }

}  // namespace torch_lowbit
