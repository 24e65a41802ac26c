// Host-side launchers of the CUDA kernels: plain types and a stream, no torch headers, so the
// .cu files compile without torch/extension.h. Each returns cudaGetLastError() after launch.
// All kernels compute in fp32 (the wrapper converts fp16/bf16 activations).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "../bcq_format.h"
#include "../conv_shape.h"

namespace torch_lowbit {
namespace cuda {

// out[N, K] fp32.
cudaError_t bcq_dequantize(const BcqWeight& w, float* out, cudaStream_t stream);
// y[M, N] = x[M, K] @ W^T.
cudaError_t lut_gemm(const float* x, int64_t M, const BcqWeight& w, float* y, cudaStream_t stream);
cudaError_t tiled_gemm_dense(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                             float* y, cudaStream_t stream);
cudaError_t tiled_gemm_bcq(const float* x, int64_t M, const BcqWeight& w, float* y,
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
