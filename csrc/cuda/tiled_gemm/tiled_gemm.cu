// Tiled GEMM on CUDA, fp32: the SIMT kernel of simt_gemm.cuh over dense rows or BCQ rows
// expanded tile by tile (never the whole matrix). fp16/bf16 go to tensor_core_gemm.cu.
#include "cuda/common/launchers.h"
#include "cuda/common/simt_gemm.cuh"

namespace torch_lowbit {
namespace cuda {

cudaError_t tiled_gemm_dense(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                             float* y, cudaStream_t stream) {
  return launch_simt_gemm(DenseRows(x, M, K), DenseRows(w, N, K), RowMajorStore{y, N}, M, N, K, 1,
                          stream);
}

cudaError_t tiled_gemm_bcq(const float* x, int64_t M, const BcqWeight& w, float* y,
                           cudaStream_t stream) {
  return launch_simt_gemm(DenseRows(x, M, w.K), BcqRows{w}, RowMajorStore{y, w.N}, M, w.N, w.K, 1,
                          stream);
}

}  // namespace cuda
}  // namespace torch_lowbit
