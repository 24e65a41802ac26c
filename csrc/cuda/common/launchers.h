// Host-side launchers of the CUDA kernels: plain types and a stream, no torch headers, so the
// .cu files compile without torch/extension.h. Each returns cudaGetLastError() after launch.
//
//   LUT-GEMM (lut_gemm.cuh, one instantiation file per bit width in generated/): m <= 32 rows
//     of fp32/fp16/bf16 activations, fp32 accumulation, deterministic split-K.
//   SIMT GEMM (simt_gemm.cuh): fp32, 128x128x8 block tiles, 8x8 register micro-tiles, double
//     buffered; serves dense and low-bit tiled_gemm for fp32 and the im2win conv.
//   Tensor-core GEMM (tensor_core_gemm.cu): fp16/bf16 via mma.sync (wmma), the low-bit weight
//     expanded tile by tile into shared memory; dense and low-bit tiled_gemm.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "common/bcq_format.h"
#include "common/conv_shape.h"

namespace torch_lowbit {
namespace cuda {

// Activation storage type; kernels compute in fp32.
enum class ActType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// out[N, K] fp32.
cudaError_t bcq_dequantize(const BcqWeight& w, float* out, cudaStream_t stream);

// LUT-GEMM: y[M, N] = x[M, K] @ W^T, x and y of type `xt`. With plan.splits > 1 the kernel
// writes fp32 partials to `workspace` ([splits, M, N]) and a second kernel sums them in order.
struct LutPlan {
  int rows_per_block;    // activation rows a block handles at once (compile-time variant)
  int64_t splits;        // K-splits across blocks
  int64_t kb_per_split;  // byte columns (8 k's) per split
};
LutPlan lut_gemm_plan(int64_t M, const BcqWeight& w, int sm_count);
cudaError_t lut_gemm(const void* x, ActType xt, int64_t M, const BcqWeight& w, const LutPlan& plan,
                     void* y, float* workspace, cudaStream_t stream);

// SIMT fp32 GEMMs: y[M, N] = x[M, K] @ W[N, K]^T.
cudaError_t tiled_gemm_dense(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                             float* y, cudaStream_t stream);
cudaError_t tiled_gemm_bcq(const float* x, int64_t M, const BcqWeight& w, float* y,
                           cudaStream_t stream);
// Tensor-core GEMMs for fp16/bf16 x (and a dense w of the same type); y has x's type.
cudaError_t tc_gemm_dense(const void* x, ActType xt, int64_t M, int64_t K, const void* w,
                          int64_t N, void* y, cudaStream_t stream);
cudaError_t tc_gemm_bcq(const void* x, ActType xt, int64_t M, const BcqWeight& w, void* y,
                        cudaStream_t stream);

// Window buffer [N][groups][OH][Wwin][R][Cg] from x NHWC.
cudaError_t im2win_transform(const float* x_nhwc, const ConvShape& s, float* win,
                             cudaStream_t stream);
// out NHWC [N][OH][OW][O]; weight [O][Cg][R][S] dense, or BCQ rows of flattened filters.
cudaError_t im2win_conv_dense(const float* win, const float* w, const float* bias,
                              const ConvShape& s, float* out, cudaStream_t stream);
cudaError_t im2win_conv_bcq(const float* win, const BcqWeight& w, const float* bias,
                            const ConvShape& s, float* out, cudaStream_t stream);

}  // namespace cuda
}  // namespace torch_lowbit
