// LUT-GEMM on CUDA. One warp per (output feature n, activation row m): each lane takes one
// byte (8 k's) of every bit-plane at a time; for a warp's 8 activations it builds the
// 256-entry table of signed sums in shared memory once, shared by all bit-planes, so every
// plane byte is one lookup scaled by its group's alpha. Offsets use the group's activation sum.
// Accumulation is fp32 and the reduction order is fixed (no atomics): results are deterministic.
#include "bcq_device.cuh"
#include "launchers.h"

namespace torch_lowbit {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

__global__ void lut_gemm_kernel(const float* __restrict__ x, int64_t M, BcqWeight w,
                                float* __restrict__ y) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp;
  const int64_t chunks = w.Kp / 8, ng = w.Kp / w.group_size;
  // A private 256-entry table per warp (4 KiB shared for the block).
  __shared__ float tables[kWarpsPerBlock][256];
  float* t = tables[warp];
  for (int64_t m = blockIdx.y; m < M; m += gridDim.y) {
  const float* xr = x + m * w.K;
  float acc = 0.f;
  for (int64_t c0 = 0; c0 < chunks; c0 += 32) {
    const int64_t c = c0 + lane;  // this lane's byte index
    for (int src = 0; src < 32 && c0 + src < chunks; ++src) {
      // The warp builds the table of chunk c0 + src cooperatively: 8 entries per lane.
      const int64_t kb = (c0 + src) * 8;
      float xs[8];
      float total = 0.f;
      for (int j = 0; j < 8; ++j) {
        xs[j] = kb + j < w.K ? xr[kb + j] : 0.f;
        total += xs[j];
      }
      for (int e = lane; e < 256; e += 32) {
        float v = -total;
        for (int j = 0; j < 8; ++j)
          if ((e >> j) & 1) v += 2.f * xs[j];
        t[e] = v;
      }
      __syncwarp();
      if (src == lane && n < w.N) {
        const int64_t g = (c * 8) / w.group_size;
        for (int64_t b = 0; b < w.bits; ++b) {
          const uint8_t byte = w.byte_at(b, n, c);
          acc += w.alpha_at(b, g, n) * t[byte];
        }
        acc += w.offset_at(g, n) * total;
      }
      __syncwarp();
    }
  }
  for (int off = 16; off > 0; off /= 2) acc += __shfl_down_sync(0xffffffffu, acc, off);
  if (lane == 0 && n < w.N) y[m * w.N + n] = acc;
  }
}

__global__ void bcq_dequantize_kernel(BcqWeight w, float* __restrict__ out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= w.N * w.K) return;
  out[i] = bcq_weight_at(w, i / w.K, i % w.K);
}

}  // namespace

cudaError_t lut_gemm(const float* x, int64_t M, const BcqWeight& w, float* y,
                     cudaStream_t stream) {
  if (M == 0 || w.N == 0) return cudaSuccess;
  const dim3 grid(blocks_for(w.N, kWarpsPerBlock), static_cast<unsigned int>(M < 65535 ? M : 65535));
  lut_gemm_kernel<<<grid, kWarpsPerBlock * 32, 0, stream>>>(x, M, w, y);
  return cudaGetLastError();
}

cudaError_t bcq_dequantize(const BcqWeight& w, float* out, cudaStream_t stream) {
  if (w.N * w.K == 0) return cudaSuccess;
  bcq_dequantize_kernel<<<blocks_for(w.N * w.K, 256), 256, 0, stream>>>(w, out);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace torch_lowbit
