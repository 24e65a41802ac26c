// SIMT fp32 GEMM, the tile study's teaching kernel: C[M, N] = A[M, K] @ B[N, K]^T with
//   * BM x BN block tiles and BK-deep K-slices staged in shared memory (A and B stored k-major,
//     so a thread's TM rows / TN columns of one k are contiguous: float4 reads),
//   * a TM x TN register micro-tile per thread (BM/TM x BN/TN threads),
//   * double buffering: the next K-slice is fetched from global memory into registers while
//     the current one is multiplied out of shared memory, then written to the other buffer;
//     one __syncthreads per K-slice,
//   * tile shape as template parameters (the im2win paper's 128 x 128 x 8 with 8 x 8 micro-tiles
//     is the default).
// Operands come through loaders, so one kernel serves dense rows, BCQ rows expanded on load and
// im2win windows: `load4(row, k)` returns A or B values (row, k .. k+3), zeros outside.
// The epilogue functor stores C(m, n).
#pragma once
#include "cuda/common/bcq_device.cuh"

namespace torch_lowbit {
namespace cuda {

// A tile of rows [row0, row0 + LOADS * THREADS / QUADS) x K-slice [k0, k0 + 4 QUADS), one float4
// (4 consecutive k of one row) per load: thread tid takes loads tid, tid + THREADS, ...
template <int LOADS, int THREADS, int QUADS, typename Load>
__device__ __forceinline__ void fetch_tile(const Load& load, int tid, int64_t row0, int64_t k0,
                                           float4* regs) {
#pragma unroll
  for (int i = 0; i < LOADS; ++i) {
    const int e = tid + i * THREADS;
    regs[i] = load.load4(row0 + e / QUADS, k0 + (e % QUADS) * 4);
  }
}

// The same loads written k-major into shared memory: smem[k][row].
template <int LOADS, int THREADS, int QUADS, int ROWS>
__device__ __forceinline__ void stash_tile(const float4* regs, int tid, float (*smem)[ROWS]) {
#pragma unroll
  for (int i = 0; i < LOADS; ++i) {
    const int e = tid + i * THREADS, row = e / QUADS, k = (e % QUADS) * 4;
    smem[k][row] = regs[i].x;
    smem[k + 1][row] = regs[i].y;
    smem[k + 2][row] = regs[i].z;
    smem[k + 3][row] = regs[i].w;
  }
}

template <int BM, int BN, int BK, int TM, int TN, typename ALoad, typename BLoad, typename Store>
__global__ void __launch_bounds__((BM / TM) * (BN / TN))
    simt_gemm_kernel(ALoad a_load, BLoad b_load, Store store, int64_t M, int64_t N, int64_t K) {
  constexpr int kThreads = (BM / TM) * (BN / TN);
  constexpr int kQuads = BK / 4;                           // float4 per row of a K-slice
  constexpr int kALoads = BM * kQuads / kThreads;          // float4 loads per thread
  constexpr int kBLoads = BN * kQuads / kThreads;
  static_assert(BK % 4 == 0 && kALoads >= 1 && kBLoads >= 1, "tile too small for the block");
  static_assert(BM * kQuads % kThreads == 0 && BN * kQuads % kThreads == 0, "uneven tile loads");
  static_assert(TM % 4 == 0 && TN % 4 == 0, "micro-tiles are read as float4");

  __shared__ __align__(16) float As[2][BK][BM];
  __shared__ __align__(16) float Bs[2][BK][BN];
  const int tid = threadIdx.x;
  const int tx = tid % (BN / TN), ty = tid / (BN / TN);
  // Row tiles on grid.x (up to 2^31 - 1 of them), column tiles on grid.y.
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * BM;
  const int64_t n0 = static_cast<int64_t>(blockIdx.y) * BN;

  float4 a_reg[kALoads], b_reg[kBLoads];
  auto fetch = [&](int64_t k0) {
    fetch_tile<kALoads, kThreads, kQuads>(a_load, tid, m0, k0, a_reg);
    fetch_tile<kBLoads, kThreads, kQuads>(b_load, tid, n0, k0, b_reg);
  };
  auto stash = [&](int buf) {
    stash_tile<kALoads, kThreads, kQuads>(a_reg, tid, As[buf]);
    stash_tile<kBLoads, kThreads, kQuads>(b_reg, tid, Bs[buf]);
  };

  float acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

  fetch(0);
  stash(0);
  __syncthreads();
  int buf = 0;
  for (int64_t k0 = 0; k0 < K; k0 += BK) {
    const bool more = k0 + BK < K;
    if (more) fetch(k0 + BK);  // global loads in flight during the math below
#pragma unroll
    for (int kk = 0; kk < BK; ++kk) {
      float a[TM], b[TN];
#pragma unroll
      for (int i = 0; i < TM; i += 4) {
        const float4 v = *reinterpret_cast<const float4*>(&As[buf][kk][ty * TM + i]);
        a[i] = v.x; a[i + 1] = v.y; a[i + 2] = v.z; a[i + 3] = v.w;
      }
#pragma unroll
      for (int j = 0; j < TN; j += 4) {
        const float4 v = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * TN + j]);
        b[j] = v.x; b[j + 1] = v.y; b[j + 2] = v.z; b[j + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    if (more) stash(buf ^ 1);  // the other buffer was last read before the previous barrier
    __syncthreads();
    buf ^= 1;
  }
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = m0 + ty * TM + i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = n0 + tx * TN + j;
      if (n < N) store(m, n, acc[i][j]);
    }
  }
}

// The im2win paper's tile: 128 x 128 x 8, 8 x 8 per thread, 256 threads.
template <typename ALoad, typename BLoad, typename Store>
cudaError_t launch_simt_gemm(ALoad a, BLoad b, Store store, int64_t M, int64_t N, int64_t K,
                             unsigned int grid_z, cudaStream_t stream) {
  constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8;
  if (M == 0 || N == 0 || grid_z == 0) return cudaSuccess;
  if ((N + BN - 1) / BN > 65535 || grid_z > 65535) return cudaErrorInvalidConfiguration;
  const dim3 grid(blocks_for(M, BM), blocks_for(N, BN), grid_z);
  simt_gemm_kernel<BM, BN, BK, TM, TN><<<grid, (BM / TM) * (BN / TN), 0, stream>>>(a, b, store, M, N, K);
  return cudaGetLastError();
}

// Row-major fp32 rows [rows, K]: float4 loads when K % 4 == 0 and the base is 16-byte aligned.
struct DenseRows {
  const float* p;
  int64_t rows, K;
  bool vec;
  DenseRows(const float* p_, int64_t rows_, int64_t K_)
      : p(p_), rows(rows_), K(K_), vec(K_ % 4 == 0 && reinterpret_cast<uintptr_t>(p_) % 16 == 0) {}
  __device__ float4 load4(int64_t r, int64_t k) const {
    float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
    if (r >= rows) return v;
    const float* row = p + r * K;
    if (vec && k + 3 < K) return __ldg(reinterpret_cast<const float4*>(row + k));
    if (k < K) v.x = row[k];
    if (k + 1 < K) v.y = row[k + 1];
    if (k + 2 < K) v.z = row[k + 2];
    if (k + 3 < K) v.w = row[k + 3];
    return v;
  }
};

// BCQ rows expanded on load: k .. k+3 share one byte (k % 4 == 0) and one group (groups are
// multiples of 32 k).
struct BcqRows {
  BcqWeight w;
  __device__ float4 load4(int64_t n, int64_t k) const {
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    if (n < w.N && k < w.K) {
      const int64_t g = k / w.group_size;
      const float off = offset_load(w, g, n);
      v[0] = v[1] = v[2] = v[3] = off;
      for (int64_t b = 0; b < w.bits; ++b) {
        const unsigned byte = w.byte_at(b, n, k >> 3) >> (k & 7);
        const float a = alpha_load(w, b, g, n);
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] += ((byte >> j) & 1u) ? a : -a;
      }
#pragma unroll
      for (int j = 0; j < 4; ++j)
        if (k + j >= w.K) v[j] = 0.f;
    }
    return make_float4(v[0], v[1], v[2], v[3]);
  }
};

struct RowMajorStore {
  float* y;
  int64_t ld;
  __device__ void operator()(int64_t m, int64_t n, float v) const { y[m * ld + n] = v; }
};

}  // namespace cuda
}  // namespace torch_lowbit
