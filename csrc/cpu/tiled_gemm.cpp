// Tiled GEMM on the CPU: W is consumed in [kGemmTileK x kGemmTileN] tiles, transposed into a
// scratch buffer (from dense fp32, or expanded from BCQ bit-planes), so the low-bit path never
// materialises more than one tile of float weights. The inner loop runs over the tile's N
// columns, which compilers vectorise without reassociating the K sum.
#include <algorithm>

#include "kernels.h"

namespace torch_lowbit {
namespace cpu {
namespace {

constexpr int64_t kRowsPerStep = 4;

// y[m, n0 + j] += sum_k x[m, k0 + k] * tile[k * kGemmTileN + j], j < nb, k < kb.
void tile_multiply(const float* x, int64_t M, int64_t ldx, int64_t k0, int64_t kb,
                   const float* tile, int64_t nb, float* y, int64_t ldy, int64_t n0) {
  for (int64_t m0 = 0; m0 < M; m0 += kRowsPerStep) {
    const int64_t mb = std::min(kRowsPerStep, M - m0);
    float acc[kRowsPerStep][kGemmTileN] = {};
    for (int64_t k = 0; k < kb; ++k) {
      const float* t = tile + k * kGemmTileN;
      for (int64_t i = 0; i < mb; ++i) {
        const float a = x[(m0 + i) * ldx + k0 + k];
        for (int64_t j = 0; j < kGemmTileN; ++j) acc[i][j] += a * t[j];
      }
    }
    for (int64_t i = 0; i < mb; ++i)
      for (int64_t j = 0; j < nb; ++j) y[(m0 + i) * ldy + n0 + j] += acc[i][j];
  }
}

template <typename PackTile>
void tiled_gemm_tile(const float* x, int64_t M, int64_t K, int64_t N, int64_t n0, int64_t n1,
                     float* y, float* scratch, PackTile pack) {
  const int64_t nb = n1 - n0;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = n0; n < n1; ++n) y[m * N + n] = 0.f;
  for (int64_t k0 = 0; k0 < K; k0 += kGemmTileK) {
    const int64_t kb = std::min(kGemmTileK, K - k0);
    std::fill(scratch, scratch + kGemmTileK * kGemmTileN, 0.f);
    pack(k0, kb, scratch);
    tile_multiply(x, M, K, k0, kb, scratch, nb, y, N, n0);
  }
}

}  // namespace

void tiled_gemm_dense_tile(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                           int64_t n0, int64_t n1, float* y, float* scratch) {
  tiled_gemm_tile(x, M, K, N, n0, n1, y, scratch, [&](int64_t k0, int64_t kb, float* tile) {
    for (int64_t j = 0; j < n1 - n0; ++j) {
      const float* row = w + (n0 + j) * K + k0;
      for (int64_t k = 0; k < kb; ++k) tile[k * kGemmTileN + j] = row[k];
    }
  });
}

void tiled_gemm_bcq_tile(const float* x, int64_t M, const BcqWeight& w, int64_t n0, int64_t n1,
                         float* y, float* scratch) {
  tiled_gemm_tile(x, M, w.K, w.N, n0, n1, y, scratch, [&](int64_t k0, int64_t kb, float* tile) {
    float row[kGemmTileK];
    for (int64_t j = 0; j < n1 - n0; ++j) {
      bcq_dequantize_block(w, n0 + j, n0 + j + 1, k0, k0 + kb, row, kGemmTileK);
      for (int64_t k = 0; k < kb; ++k) tile[k * kGemmTileN + j] = row[k];
    }
  });
}

}  // namespace cpu
}  // namespace torch_lowbit
