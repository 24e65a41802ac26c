// Tensor-core GEMM for fp16/bf16 activations: y[M, N] = x[M, K] @ W[N, K]^T, fp32 accumulation,
// through WMMA 16x16x16 fragments (mma.sync on sm_80+). Block tile 128 x 128 x 32, 8 warps of
// 64 x 32 each; both operands staged in shared memory with a register double buffer (the next
// K-slice is fetched from global memory while the tensor cores work on the current one).
//
// The low-bit weight is expanded tile by tile into shared memory in x's type: each thread
// decodes 16 weights of one row (2 bytes per plane, one group: group sizes are multiples of 32
// and K-slices start at multiples of 32), so the weight stays packed in global memory and the
// expanded tile never leaves the SM. Tails in M, N and K are zero-filled and guarded.
#include <mma.h>

#include "cuda/common/bcq_device.cuh"
#include "cuda/common/launchers.h"

namespace torch_lowbit {
namespace cuda {
namespace {

using namespace nvcuda;

constexpr int kBM = 128, kBN = 128, kBK = 32, kPad = 8, kLd = kBK + kPad;  // ld: 80 bytes
constexpr int kWarpsM = 2, kWarpsN = 4, kThreads = kWarpsM * kWarpsN * 32;
constexpr int kFragM = kBM / kWarpsM / 16, kFragN = kBN / kWarpsN / 16;  // 4 x 2 fragments

template <typename T> struct Convert;
template <> struct Convert<__half> {
  __device__ static __half from(float v) { return __float2half_rn(v); }
  __device__ static float to(__half v) { return __half2float(v); }
};
template <> struct Convert<__nv_bfloat16> {
  __device__ static __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
  __device__ static float to(__nv_bfloat16 v) { return __bfloat162float(v); }
};

// 16 consecutive elements (k .. k+15) of one row of a row-major [rows, K] matrix of T.
template <typename T>
struct DenseTileRows {
  const T* p;
  int64_t rows, K;
  bool vec;  // 16-byte loads: K % 8 == 0 and an aligned base
  __device__ void load16(int64_t r, int64_t k, T* out) const {
    if (r < rows && vec && k + 15 < K) {
      const uint4* src = reinterpret_cast<const uint4*>(p + r * K + k);
      reinterpret_cast<uint4*>(out)[0] = __ldg(src);
      reinterpret_cast<uint4*>(out)[1] = __ldg(src + 1);
      return;
    }
#pragma unroll
    for (int j = 0; j < 16; ++j) out[j] = (r < rows && k + j < K) ? p[r * K + k + j] : Convert<T>::from(0.f);
  }
};

// 16 consecutive weights (k .. k+15, k % 16 == 0) of BCQ row n, decoded into T.
template <typename T>
struct BcqTileRows {
  BcqWeight w;
  __device__ void load16(int64_t n, int64_t k, T* out) const {
    float v[16];
    if (n < w.N && k < w.K) {
      const int64_t g = k / w.group_size;
      const float off = offset_load(w, g, n);
#pragma unroll
      for (int j = 0; j < 16; ++j) v[j] = off;
      for (int64_t b = 0; b < w.bits; ++b) {
        const unsigned bits = w.byte_at(b, n, k >> 3) | (static_cast<unsigned>(w.byte_at(b, n, (k >> 3) + 1)) << 8);
        const float a = alpha_load(w, b, g, n);
#pragma unroll
        for (int j = 0; j < 16; ++j) v[j] += ((bits >> j) & 1u) ? a : -a;
      }
#pragma unroll
      for (int j = 0; j < 16; ++j)
        if (k + j >= w.K) v[j] = 0.f;
    } else {
#pragma unroll
      for (int j = 0; j < 16; ++j) v[j] = 0.f;
    }
#pragma unroll
    for (int j = 0; j < 16; ++j) out[j] = Convert<T>::from(v[j]);
  }
};

template <typename T, typename WLoad>
__global__ void __launch_bounds__(kThreads)
    tc_gemm_kernel(DenseTileRows<T> x_load, int64_t M, int64_t K, WLoad w_load, int64_t N,
                   T* __restrict__ y) {
  __shared__ __align__(128) T As[2][kBM][kLd];
  __shared__ __align__(128) T Bs[2][kBN][kLd];
  const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
  const int wm = warp / kWarpsN, wn = warp % kWarpsN;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kBM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * kBN;

  // Each thread moves 16 elements of one row of each operand per K-slice (128 rows x 2 halves).
  const int row = tid / 2, kh = (tid % 2) * 16;
  __align__(16) T a_reg[16];
  __align__(16) T b_reg[16];
  auto fetch = [&](int64_t k0) {
    x_load.load16(m0 + row, k0 + kh, a_reg);
    w_load.load16(n0 + row, k0 + kh, b_reg);
  };
  auto stash = [&](int buf) {
    uint4* a_dst = reinterpret_cast<uint4*>(&As[buf][row][kh]);
    uint4* b_dst = reinterpret_cast<uint4*>(&Bs[buf][row][kh]);
    a_dst[0] = reinterpret_cast<const uint4*>(a_reg)[0];
    a_dst[1] = reinterpret_cast<const uint4*>(a_reg)[1];
    b_dst[0] = reinterpret_cast<const uint4*>(b_reg)[0];
    b_dst[1] = reinterpret_cast<const uint4*>(b_reg)[1];
  };

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[kFragM][kFragN];
#pragma unroll
  for (int i = 0; i < kFragM; ++i)
#pragma unroll
    for (int j = 0; j < kFragN; ++j) wmma::fill_fragment(acc[i][j], 0.f);

  fetch(0);
  stash(0);
  __syncthreads();
  int buf = 0;
  for (int64_t k0 = 0; k0 < K; k0 += kBK) {
    const bool more = k0 + kBK < K;
    if (more) fetch(k0 + kBK);
#pragma unroll
    for (int kk = 0; kk < kBK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> a[kFragM];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> b[kFragN];
#pragma unroll
      for (int i = 0; i < kFragM; ++i)
        wmma::load_matrix_sync(a[i], &As[buf][wm * kFragM * 16 + i * 16][kk], kLd);
#pragma unroll
      for (int j = 0; j < kFragN; ++j)  // W tile stored [n][k]: B = W^T is column-major
        wmma::load_matrix_sync(b[j], &Bs[buf][wn * kFragN * 16 + j * 16][kk], kLd);
#pragma unroll
      for (int i = 0; i < kFragM; ++i)
#pragma unroll
        for (int j = 0; j < kFragN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    if (more) stash(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }

  // Epilogue: each warp stages one 16x16 fp32 fragment at a time in shared memory (the A
  // buffers are free now) and writes it out with tail guards.
  float* scratch = reinterpret_cast<float*>(&As[0][0][0]) + warp * 256;
#pragma unroll
  for (int i = 0; i < kFragM; ++i)
#pragma unroll
    for (int j = 0; j < kFragN; ++j) {
      wmma::store_matrix_sync(scratch, acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int64_t m = m0 + wm * kFragM * 16 + i * 16 + e / 16;
        const int64_t n = n0 + wn * kFragN * 16 + j * 16 + e % 16;
        if (m < M && n < N) y[m * N + n] = Convert<T>::from(scratch[e]);
      }
      __syncwarp();
    }
}

template <typename T>
DenseTileRows<T> dense_rows(const void* p, int64_t rows, int64_t K) {
  return DenseTileRows<T>{static_cast<const T*>(p), rows, K,
                          K % 8 == 0 && reinterpret_cast<uintptr_t>(p) % 16 == 0};
}

template <typename T, typename WLoad>
cudaError_t launch(const void* x, int64_t M, int64_t K, WLoad w, int64_t N, void* y,
                   cudaStream_t stream) {
  if (M == 0 || N == 0) return cudaSuccess;
  if ((N + kBN - 1) / kBN > 65535) return cudaErrorInvalidConfiguration;
  const dim3 grid(blocks_for(M, kBM), blocks_for(N, kBN));
  tc_gemm_kernel<T, WLoad><<<grid, kThreads, 0, stream>>>(dense_rows<T>(x, M, K), M, K, w, N,
                                                          static_cast<T*>(y));
  return cudaGetLastError();
}

}  // namespace

cudaError_t tc_gemm_dense(const void* x, ActType xt, int64_t M, int64_t K, const void* w,
                          int64_t N, void* y, cudaStream_t stream) {
  switch (xt) {
    case ActType::kFloat16: return launch<__half>(x, M, K, dense_rows<__half>(w, N, K), N, y, stream);
    case ActType::kBFloat16:
      return launch<__nv_bfloat16>(x, M, K, dense_rows<__nv_bfloat16>(w, N, K), N, y, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t tc_gemm_bcq(const void* x, ActType xt, int64_t M, const BcqWeight& w, void* y,
                        cudaStream_t stream) {
  switch (xt) {
    case ActType::kFloat16: return launch<__half>(x, M, w.K, BcqTileRows<__half>{w}, w.N, y, stream);
    case ActType::kBFloat16:
      return launch<__nv_bfloat16>(x, M, w.K, BcqTileRows<__nv_bfloat16>{w}, w.N, y, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace cuda
}  // namespace torch_lowbit
