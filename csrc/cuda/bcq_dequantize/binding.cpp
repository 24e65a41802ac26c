// torch_lowbit::bcq_dequantize on CUDA tensors (schema: torch_lowbit/library.py).
#include <torch/library.h>

#include "cuda/common/binding_utils.h"

namespace torch_lowbit {
namespace cuda {
namespace {

at::Tensor bcq_dequantize_cuda(const at::Tensor& planes, const at::Tensor& alpha,
                               const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  const c10::cuda::CUDAGuard guard(planes.device());
  BcqOnDevice w(planes, alpha, offset, K, G);
  auto out = new_output({w.view.N, K}, alpha.options().dtype(at::kFloat));
  check_launch(bcq_dequantize(w.view, out.data_ptr<float>(), stream()), "bcq_dequantize");
  return out.to(alpha.scalar_type());
}

}  // namespace
}  // namespace cuda

TORCH_LIBRARY_IMPL(torch_lowbit, CUDA, m) { m.impl("bcq_dequantize", &cuda::bcq_dequantize_cuda); }

}  // namespace torch_lowbit
