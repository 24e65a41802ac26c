// torch_lowbit::tiled_gemm and tiled_gemm_bcq on CUDA tensors (schemas: torch_lowbit/library.py).
#include <torch/library.h>

#include "cuda/common/binding_utils.h"

namespace torch_lowbit {
namespace cuda {
namespace {

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
    check_launch(tiled_gemm_dense(xf.data_ptr<float>(), M, K, wf.data_ptr<float>(), N,
                                        y.data_ptr<float>(), stream()),
                 "tiled_gemm");
    return y;
  }
  const auto xc = x.contiguous(), wc = weight.to(x.scalar_type()).contiguous();
  auto y = new_output({M, N}, x.options());
  check_launch(tc_gemm_dense(xc.data_ptr(), act_type(x), M, K, wc.data_ptr(), N, y.data_ptr(),
                                   stream()),
               "tiled_gemm (tensor cores)");
  return y;
}

}  // namespace

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
    check_launch(tiled_gemm_bcq(xf.data_ptr<float>(), M, w.view, y.data_ptr<float>(), stream()),
                 "tiled_gemm_bcq");
    return y;
  }
  const auto xc = x.contiguous();
  check_launch(tc_gemm_bcq(xc.data_ptr(), act_type(x), M, w.view, y.data_ptr(), stream()),
               "tiled_gemm_bcq (tensor cores)");
  return y;
}

}  // namespace cuda

TORCH_LIBRARY_IMPL(torch_lowbit, CUDA, m) {
  m.impl("tiled_gemm", &cuda::tiled_gemm_cuda);
  m.impl("tiled_gemm_bcq", &cuda::tiled_gemm_bcq_cuda);
}

}  // namespace torch_lowbit
