// torch_lowbit::lut_gemm on CUDA tensors (schema: torch_lowbit/library.py): fp32/fp16/bf16
// activations, the result in x's dtype.
#include <torch/library.h>

#include "cuda/common/binding_utils.h"

namespace torch_lowbit {
namespace cuda {

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
  const LutPlan plan = lut_gemm_plan(M, w.view, sms);
  at::Tensor workspace;
  if (plan.splits > 1) workspace = at::empty({plan.splits, M, w.view.N}, x.options().dtype(at::kFloat));
  check_launch(lut_gemm(xc.data_ptr(), act_type(x), M, w.view, plan, y.data_ptr(),
                              plan.splits > 1 ? workspace.data_ptr<float>() : nullptr, stream()),
               "lut_gemm");
  return y;
}

}  // namespace cuda

TORCH_LIBRARY_IMPL(torch_lowbit, CUDA, m) { m.impl("lut_gemm", &cuda::lut_gemm_cuda); }

}  // namespace torch_lowbit
