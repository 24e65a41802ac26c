// bcq_dequantize on the GPU: one thread per weight element.
#include "cuda/common/bcq_device.cuh"

namespace torch_lowbit {
namespace cuda {
namespace {

__global__ void bcq_dequantize_kernel(BcqWeight w, float* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= w.N * w.K) return;
  out[i] = bcq_weight_at(w, i / w.K, i % w.K);
}

}  // namespace

cudaError_t bcq_dequantize(const BcqWeight& w, float* out, cudaStream_t stream) {
  if (w.N * w.K == 0) return cudaSuccess;
  bcq_dequantize_kernel<<<blocks_for(w.N * w.K, 256), 256, 0, stream>>>(w, out);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace torch_lowbit
