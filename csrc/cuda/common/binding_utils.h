// What the CUDA op bindings (cuda/<op>/binding.cpp, compiled by the host compiler) share:
// launch checks, the current stream, the activation type, a BCQ weight made contiguous.
#pragma once
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "common/checks.h"
#include "cuda/common/launchers.h"

namespace torch_lowbit {
namespace cuda {

inline void check_launch(cudaError_t err, const char* what) {
  TORCH_CHECK(err == cudaSuccess, "torch_lowbit CUDA kernel ", what,
              " failed to launch: ", cudaGetErrorString(err));
}

inline cudaStream_t stream() { return at::cuda::getCurrentCUDAStream().stream(); }

inline ActType act_type(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kHalf: return ActType::kFloat16;
    case at::kBFloat16: return ActType::kBFloat16;
    case at::kFloat: return ActType::kFloat32;
    default: TORCH_CHECK(false, "x: expected float32, float16 or bfloat16, got ", x.scalar_type());
  }
}

// The tensors of a BCQ weight made contiguous, and the kernels' view of them.
struct BcqOnDevice {
  at::Tensor planes, alpha, offset;
  BcqWeight view;
  BcqOnDevice(const at::Tensor& p, const at::Tensor& a, const at::Tensor& o, int64_t K, int64_t G)
      : planes(p.contiguous()), alpha(a.contiguous()), offset(o.contiguous()),
        view(bcq_view(planes, alpha, offset, K, G)) {}
};

// The CUDA implementations that bcq_linear's binding chooses between (defined in
// lut_gemm/binding.cpp and tiled_gemm/binding.cpp).
at::Tensor lut_gemm_cuda(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                         const at::Tensor& offset, int64_t K, int64_t G);
at::Tensor tiled_gemm_bcq_cuda(const at::Tensor& x, const at::Tensor& planes,
                               const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                               int64_t G);

}  // namespace cuda
}  // namespace torch_lowbit
