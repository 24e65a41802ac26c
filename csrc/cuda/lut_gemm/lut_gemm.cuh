// LUT-GEMM on CUDA: y[M, N] = x[M, K] @ W^T for a BCQ weight, m <= 32 activation rows.
//
// The paper's idea (tables of signed activation sums; every bit-plane byte becomes lookups
// scaled by its group's alpha), laid out for a warp:
//   * Tables live in registers, not shared memory. For the byte column kb (8 k's) and one
//     activation row, lane e (0-15) holds the signed sum of x[8kb .. 8kb+3] with signs from the
//     bits of e, lane 16 + e the same for x[8kb+4 .. 8kb+7]: the two 16-entry (mu = 4) tables of
//     the byte. A byte's value is __shfl(table, lo nibble) + __shfl(table, 16 + hi nibble): two
//     conflict-free lookups, where a 256-entry shared table indexed by random bytes hits ~3-4-way
//     bank conflicts. All lanes of a warp work on the same kb, so one table register serves them.
//   * Weight bytes stream with 32-bit loads, one byte column ahead: lane = (panel, quad) reads 4 rows of a panel at one
//     byte column; a warp covers 8 panels = 128 rows, coalesced in 16-byte runs.
//   * The block's 4 warps take interleaved byte columns of the same 128 rows and add their
//     results in shared memory in a fixed order; blocks split K further when N alone cannot
//     fill the GPU, writing fp32 partials that a second kernel sums in order. No atomics, fp32
//     accumulation throughout: results do not depend on launch order.
//   * Any group size: the group of a byte column is kb * 8 / group_size, and the alphas/offsets
//     of the lane's 4 rows are reloaded when it changes (warp-uniform).
// Compile-time variants: BITS (1-8) x MB (activation rows per block: 1, 4 or 16), instantiated
// in generated/lut_gemm_bits*.cu (one file per bit width, built in parallel).
#pragma once
#include "cuda/common/bcq_device.cuh"

namespace torch_lowbit {
namespace cuda {

constexpr int kLutWarps = 4;
constexpr int kLutRowsPerBlock = 128;  // 32 lanes x 4 rows

template <int BITS, int MB>
__global__ void __launch_bounds__(kLutWarps * 32)
    lut_gemm_kernel(const void* __restrict__ x, ActType xt, int64_t M, BcqWeight w,
                    void* __restrict__ y, float* __restrict__ partial, int64_t kb_per_split) {
  const unsigned full = 0xffffffffu;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t panel = static_cast<int64_t>(blockIdx.x) * (kLutRowsPerBlock / kPanelRows) + (lane >> 2);
  const int quad = lane & 3;
  const int64_t n0 = panel * kPanelRows + quad * 4;  // this lane's 4 rows: n0 .. n0 + 3
  const bool panel_ok = panel < w.panels();
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * MB;
  const int mcount = static_cast<int>(M - m0 < MB ? M - m0 : MB);
  const int64_t row_bytes = w.row_bytes();
  const int64_t kb_begin = static_cast<int64_t>(blockIdx.z) * kb_per_split;
  const int64_t kb_end = kb_begin + kb_per_split < row_bytes ? kb_begin + kb_per_split : row_bytes;
  const int half = lane >> 4, entry = lane & 15;

  float acc[MB][4];
#pragma unroll
  for (int i = 0; i < MB; ++i)
#pragma unroll
    for (int r = 0; r < 4; ++r) acc[i][r] = 0.f;
  float alpha[BITS][4], offset[4];
  int64_t group = -1;

  // The bytes of the next byte column are loaded before this one is used (a register
  // double buffer), so each warp keeps two loads per plane in flight.
  auto load_words = [&](int64_t kb, uint32_t* words) {
#pragma unroll
    for (int b = 0; b < BITS; ++b)
      words[b] = panel_ok && kb < kb_end
                     ? __ldg(reinterpret_cast<const uint32_t*>(w.planes + w.panel_offset(b, panel, kb)) + quad)
                     : 0u;
  };
  uint32_t next[BITS];
  load_words(kb_begin + warp, next);
  for (int64_t kb = kb_begin + warp; kb < kb_end; kb += kLutWarps) {
    uint32_t word[BITS];
#pragma unroll
    for (int b = 0; b < BITS; ++b) word[b] = next[b];
    load_words(kb + kLutWarps, next);
    const int64_t g = kb * 8 / w.group_size;
    if (g != group) {  // warp-uniform: every lane is at the same kb
      group = g;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const bool ok = n0 + r < w.N;
        offset[r] = ok ? offset_load(w, g, n0 + r) : 0.f;
#pragma unroll
        for (int b = 0; b < BITS; ++b) alpha[b][r] = ok ? alpha_load(w, b, g, n0 + r) : 0.f;
      }
    }
    const int64_t k = kb * 8 + half * 4;
#pragma unroll
    for (int i = 0; i < MB; ++i) {
      if (i >= mcount) break;  // warp-uniform
      const int64_t xrow = (m0 + i) * w.K;
      float table = 0.f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const float v = k + j < w.K ? act_load(x, xrow + k + j, xt) : 0.f;
        table += ((entry >> j) & 1) ? v : -v;
      }
      // entry 15 of each half has every sign positive: the sum of the byte's 8 activations
      const float total = __shfl_sync(full, table, 15) + __shfl_sync(full, table, 31);
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        float s = offset[r] * total;
#pragma unroll
        for (int b = 0; b < BITS; ++b) {
          const uint32_t byte = (word[b] >> (8 * r)) & 0xffu;
          const float v = __shfl_sync(full, table, static_cast<int>(byte & 15u)) +
                          __shfl_sync(full, table, 16 + static_cast<int>(byte >> 4));
          s = fmaf(alpha[b][r], v, s);
        }
        acc[i][r] += s;
      }
    }
  }

  // Sum the warps' K-slices in a fixed order.
  __shared__ float partial_sums[kLutWarps][MB][kLutRowsPerBlock];
  const int local = (lane >> 2) * kPanelRows + quad * 4;
#pragma unroll
  for (int i = 0; i < MB; ++i)
#pragma unroll
    for (int r = 0; r < 4; ++r) partial_sums[warp][i][local + r] = acc[i][r];
  __syncthreads();
  for (int e = threadIdx.x; e < MB * kLutRowsPerBlock; e += blockDim.x) {
    const int i = e / kLutRowsPerBlock, row = e % kLutRowsPerBlock;
    const int64_t n = static_cast<int64_t>(blockIdx.x) * kLutRowsPerBlock + row;
    if (i >= mcount || n >= w.N) continue;
    float v = 0.f;
#pragma unroll
    for (int q = 0; q < kLutWarps; ++q) v += partial_sums[q][i][row];
    if (partial)
      partial[(static_cast<int64_t>(blockIdx.z) * M + m0 + i) * w.N + n] = v;
    else
      act_store(y, (m0 + i) * w.N + n, v, xt);
  }
}

template <int BITS, int MB>
cudaError_t launch_lut_gemm(const void* x, ActType xt, int64_t M, const BcqWeight& w,
                            const LutPlan& plan, void* y, float* workspace, cudaStream_t stream) {
  const dim3 grid(blocks_for(w.N, kLutRowsPerBlock), blocks_for(M, MB),
                  static_cast<unsigned int>(plan.splits));
  lut_gemm_kernel<BITS, MB><<<grid, kLutWarps * 32, 0, stream>>>(
      x, xt, M, w, y, plan.splits > 1 ? workspace : nullptr, plan.kb_per_split);
  return cudaGetLastError();
}

// The instantiations live in generated/lut_gemm_bits*.cu.
#define TORCH_LOWBIT_LUT_GEMM_EXTERN(BITS, MB)                                                  \
  extern template cudaError_t launch_lut_gemm<BITS, MB>(const void*, ActType, int64_t,         \
                                                         const BcqWeight&, const LutPlan&, void*, \
                                                         float*, cudaStream_t);

}  // namespace cuda
}  // namespace torch_lowbit
