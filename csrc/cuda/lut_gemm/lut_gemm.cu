// LUT-GEMM host side: the plan (rows per block, K-splits), the dispatch over the compile-time
// variants (instantiated in generated/) and the ordered split-K reduction. The kernel itself is
// in lut_gemm.cuh.
#include "common/bits_dispatch.h"
#include "cuda/lut_gemm/lut_gemm.cuh"

namespace torch_lowbit {
namespace cuda {

#define TORCH_LOWBIT_LUT_EXTERN_ALL(BITS) \
  TORCH_LOWBIT_LUT_GEMM_EXTERN(BITS, 1)   \
  TORCH_LOWBIT_LUT_GEMM_EXTERN(BITS, 4)   \
  TORCH_LOWBIT_LUT_GEMM_EXTERN(BITS, 16)
TORCH_LOWBIT_LUT_EXTERN_ALL(1)
TORCH_LOWBIT_LUT_EXTERN_ALL(2)
TORCH_LOWBIT_LUT_EXTERN_ALL(3)
TORCH_LOWBIT_LUT_EXTERN_ALL(4)
TORCH_LOWBIT_LUT_EXTERN_ALL(5)
TORCH_LOWBIT_LUT_EXTERN_ALL(6)
TORCH_LOWBIT_LUT_EXTERN_ALL(7)
TORCH_LOWBIT_LUT_EXTERN_ALL(8)

namespace {

__global__ void split_sum_kernel(const float* __restrict__ partial, int64_t splits, int64_t count,
                                 void* __restrict__ y, ActType yt) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= count) return;
  float v = 0.f;
  for (int64_t s = 0; s < splits; ++s) v += partial[s * count + i];  // fixed order
  act_store(y, i, v, yt);
}

template <int MB>
cudaError_t dispatch_bits(const void* x, ActType xt, int64_t M, const BcqWeight& w,
                          const LutPlan& plan, void* y, float* ws, cudaStream_t stream) {
  if (w.bits < 1 || w.bits > 8) return cudaErrorInvalidValue;
  return with_bits(w.bits, [&](auto bits) {
    return launch_lut_gemm<decltype(bits)::value, MB>(x, xt, M, w, plan, y, ws, stream);
  });
}

}  // namespace

LutPlan lut_gemm_plan(int64_t M, const BcqWeight& w, int sm_count) {
  LutPlan plan;
  plan.rows_per_block = M <= 1 ? 1 : (M <= 4 ? 4 : 16);
  const int64_t blocks = ((w.N + kLutRowsPerBlock - 1) / kLutRowsPerBlock) *
                         ((M + plan.rows_per_block - 1) / plan.rows_per_block);
  // Enough blocks for ~4 per SM, but at least 8 byte columns per warp in each split.
  const int64_t want = (4 * static_cast<int64_t>(sm_count > 0 ? sm_count : 1) + blocks - 1) / blocks;
  const int64_t most = w.row_bytes() / (8 * kLutWarps) > 0 ? w.row_bytes() / (8 * kLutWarps) : 1;
  int64_t splits = want < most ? want : most;
  if (splits < 1) splits = 1;
  plan.kb_per_split = (w.row_bytes() + splits - 1) / splits;
  plan.splits = (w.row_bytes() + plan.kb_per_split - 1) / plan.kb_per_split;  // no empty split
  return plan;
}

cudaError_t lut_gemm(const void* x, ActType xt, int64_t M, const BcqWeight& w, const LutPlan& plan,
                     void* y, float* workspace, cudaStream_t stream) {
  if (M == 0 || w.N == 0) return cudaSuccess;
  cudaError_t err = cudaErrorInvalidValue;
  switch (plan.rows_per_block) {
    case 1: err = dispatch_bits<1>(x, xt, M, w, plan, y, workspace, stream); break;
    case 4: err = dispatch_bits<4>(x, xt, M, w, plan, y, workspace, stream); break;
    case 16: err = dispatch_bits<16>(x, xt, M, w, plan, y, workspace, stream); break;
  }
  if (err != cudaSuccess || plan.splits <= 1) return err;
  const int64_t count = M * w.N;
  split_sum_kernel<<<blocks_for(count, 256), 256, 0, stream>>>(workspace, plan.splits, count, y, xt);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace torch_lowbit
