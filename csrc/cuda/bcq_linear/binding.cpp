// torch_lowbit::bcq_linear on CUDA tensors (schema: torch_lowbit/library.py): LUT-GEMM for few
// rows, the tiled GEMM beyond. rows * bits <= 96 is a placeholder until a GPU run measures the
// crossover (benchmarks/gpu_kernels.py).
#include <torch/library.h>

#include "cuda/common/binding_utils.h"

namespace torch_lowbit {
namespace cuda {
namespace {

constexpr int64_t kLutMaxRowBits = 96;

at::Tensor bcq_linear_cuda(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                           const at::Tensor& offset, int64_t K, int64_t G) {
  TORCH_CHECK(x.dim() == 2, "x: expected 2-D [M, K], got ", x.sizes());
  if (x.size(0) * planes.size(0) <= kLutMaxRowBits) return lut_gemm_cuda(x, planes, alpha, offset, K, G);
  return tiled_gemm_bcq_cuda(x, planes, alpha, offset, K, G);
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(torch_lowbit, CUDA, m) { m.impl("bcq_linear", &cuda::bcq_linear_cuda); }

}  // namespace torch_lowbit
