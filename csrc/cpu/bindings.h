// The CPU low-bit linear products on ATen tensors, y fp32 [M, N] (each defined in its op's
// binding.cpp), so that bcq_linear's binding can run the kernel its selector picks.
#pragma once
#include <ATen/ATen.h>

namespace torch_lowbit {
namespace cpu {

at::Tensor lut_gemm_f32(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                        const at::Tensor& offset, int64_t K, int64_t G);
at::Tensor tiled_gemm_bcq_f32(const at::Tensor& x, const at::Tensor& planes,
                              const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                              int64_t G);
// ATen's dense fp32 GEMM (MKL / oneDNN) on the weight expanded block by block (dense_gemm_bcq.cpp).
at::Tensor dense_gemm_bcq_f32(const at::Tensor& x, const at::Tensor& planes,
                              const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                              int64_t G);

// int8 activations on the integer units (cpu/int8_gemm/): uniform-grid weights only, which
// bcq_weight_uniform says; AVX2 and up.
at::Tensor int8_gemm_bcq_f32(const at::Tensor& x, const at::Tensor& planes,
                             const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                             int64_t G);
bool bcq_weight_uniform(const at::Tensor& planes, const at::Tensor& alpha, const at::Tensor& offset,
                        int64_t K, int64_t G);

}  // namespace cpu
}  // namespace torch_lowbit
