// Tiled GEMM on CUDA, SIMT fp32: y[M, N] = x[M, K] @ W[N, K]^T with 64x64 block tiles, a 4x4
// register micro-tile per thread and K-slices of 16 staged in shared memory. The weight tile is
// loaded through a WeightTile functor: dense fp32, or expanded from BCQ bit-planes in the load.
#include "bcq_device.cuh"
#include "launchers.h"

namespace torch_lowbit {
namespace cuda {
namespace {

constexpr int kBM = 64, kBN = 64, kBK = 16, kTM = 4, kTN = 4;
constexpr int kThreads = (kBM / kTM) * (kBN / kTN);  // 256

struct DenseWeight {
  const float* w;
  int64_t N, K;
  __device__ float operator()(int64_t n, int64_t k) const {
    return (n < N && k < K) ? w[n * K + k] : 0.f;
  }
};

struct BcqTile {
  BcqWeight w;
  __device__ float operator()(int64_t n, int64_t k) const {
    return (n < w.N && k < w.K) ? bcq_weight_at(w, n, k) : 0.f;
  }
};

template <typename Weight>
__global__ void tiled_gemm_kernel(const float* __restrict__ x, int64_t M, int64_t N, int64_t K,
                                  Weight weight, float* __restrict__ y) {
  __shared__ float xs[kBK][kBM];
  __shared__ float ws[kBK][kBN];
  const int tid = threadIdx.x;
  const int tx = tid % (kBN / kTN), ty = tid / (kBN / kTN);
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kBN;
  float acc[kTM][kTN] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    for (int i = tid; i < kBK * kBM; i += kThreads) {
      const int kk = i % kBK, mm = i / kBK;
      const int64_t m = m0 + mm, k = k0 + kk;
      xs[kk][mm] = (m < M && k < K) ? x[m * K + k] : 0.f;
    }
    for (int i = tid; i < kBK * kBN; i += kThreads) {
      const int kk = i % kBK, nn = i / kBK;
      ws[kk][nn] = weight(n0 + nn, k0 + kk);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[kTM], b[kTN];
#pragma unroll
      for (int i = 0; i < kTM; ++i) a[i] = xs[kk][ty * kTM + i];
#pragma unroll
      for (int j = 0; j < kTN; ++j) b[j] = ws[kk][tx * kTN + j];
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
  for (int i = 0; i < kTM; ++i) {
    const int64_t m = m0 + ty * kTM + i;
    if (m >= M) continue;
    for (int j = 0; j < kTN; ++j) {
      const int64_t n = n0 + tx * kTN + j;
      if (n < N) y[m * N + n] = acc[i][j];
    }
  }
}

template <typename Weight>
cudaError_t launch(const float* x, int64_t M, int64_t N, int64_t K, Weight weight, float* y,
                   cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  const dim3 grid(blocks_for(N, kBN), blocks_for(M, kBM));
  tiled_gemm_kernel<<<grid, kThreads, 0, stream>>>(x, M, N, K, weight, y);
  return cudaGetLastError();
}

}  // namespace

cudaError_t tiled_gemm_dense(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                             float* y, cudaStream_t stream) {
  return launch(x, M, N, K, DenseWeight{w, N, K}, y, stream);
}

cudaError_t tiled_gemm_bcq(const float* x, int64_t M, const BcqWeight& w, float* y,
                           cudaStream_t stream) {
  return launch(x, M, w.N, w.K, BcqTile{w}, y, stream);
}

}  // namespace cuda
}  // namespace torch_lowbit
