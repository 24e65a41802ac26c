// Tiled GEMM on the CPU: W is consumed in [kGemmTileK x kGemmTileN] tiles, transposed into a
// scratch buffer (from dense fp32, or expanded from BCQ bit-planes), so the low-bit path never
// materialises more than one tile of float weights. The inner loop runs over the tile's N
// columns, which compilers vectorise without reassociating the K sum.
#include "cpu/tiled_gemm/tiled_gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "cpu/bcq_dequantize/bcq_dequantize.h"
#include "cpu/microkernels/microkernels.h"

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

namespace {

// Zero y's tile, then per K-slice: expand every strip of the tile (pack(strip, row0, k0, kb);
// all of them fit the L2), and sweep blocks of kRowBlock rows of x over all strips, so a block
// of x stays in L1 while the strips stream from L2.
constexpr int64_t kRowBlock = 24;

template <typename PackStrip>
void tiled_gemm_strips(bool avx512, const float* x, int64_t M, int64_t K, int64_t N, int64_t n0,
                       int64_t n1, float* y, float* scratch, PackStrip pack) {
  const int64_t width = avx512 ? kStripColsAvx512 : kStripColsAvx2;
  for (int64_t m = 0; m < M; ++m) std::fill(y + m * N + n0, y + m * N + n1, 0.f);
  for (int64_t k0 = 0; k0 < K; k0 += kSimdTileK) {
    const int64_t kb = std::min(kSimdTileK, K - k0);
    for (int64_t row0 = n0; row0 < n1; row0 += width) pack(scratch + (row0 - n0) * kSimdTileK, row0, k0, kb);
    for (int64_t m0 = 0; m0 < M; m0 += kRowBlock) {
      const int64_t mb = std::min(kRowBlock, M - m0);
      const float* rows[kRowBlock];
      for (int64_t i = 0; i < mb; ++i) rows[i] = x + (m0 + i) * K + k0;
      for (int64_t row0 = n0; row0 < n1; row0 += width) {
        const float* strip = scratch + (row0 - n0) * kSimdTileK;
        const int64_t cols = std::min(width, n1 - row0);
        float* c = y + m0 * N + row0;
        if (avx512)
          gemm_rows_avx512(rows, mb, kb, strip, c, N, cols);
        else
          gemm_rows_avx2(rows, mb, kb, strip, c, N, cols);
      }
    }
  }
}

}  // namespace

void tiled_gemm_dense_simd(bool avx512, const float* x, int64_t M, int64_t K, const float* w,
                           int64_t N, int64_t n0, int64_t n1, float* y, float* scratch) {
  const int64_t width = avx512 ? kStripColsAvx512 : kStripColsAvx2;
  tiled_gemm_strips(avx512, x, M, K, N, n0, n1, y, scratch,
                    [&](float* strip, int64_t row0, int64_t k0, int64_t kb) {
                      if (avx512) {
                        pack_strip_avx512(w + row0 * K + k0, K, std::min(width, n1 - row0), kb, strip);
                        return;
                      }
                      for (int64_t j = 0; j < width; ++j) {
                        const int64_t n = row0 + j;
                        for (int64_t k = 0; k < kb; ++k)
                          strip[k * width + j] = n < n1 ? w[n * K + k0 + k] : 0.f;
                      }
                    });
}

void tiled_gemm_bcq_simd(bool avx512, const float* x, int64_t M, const BcqWeight& w, int64_t n0,
                         int64_t n1, float* y, float* scratch) {
  tiled_gemm_strips(avx512, x, M, w.K, w.N, n0, n1, y, scratch,
                    [&](float* strip, int64_t row0, int64_t k0, int64_t kb) {
                      // Whole byte columns: the expanded tail past K is never read.
                      const int64_t kb8 = (kb + 7) / 8 * 8;
                      if (avx512)
                        expand_bcq_strip_avx512(w, row0, k0, kb8, strip);
                      else
                        expand_bcq_strip_avx2(w, row0, k0, kb8, strip);
                    });
}

namespace {

// Threads over column tiles of y; tile_fn(n0, n1, scratch) computes one.
template <typename TileFn>
void run_tiled(int64_t N, bool simd, TileFn tile_fn) {
  int64_t tile_n = simd ? kSimdTileN : kGemmTileN;
  // Enough tiles for every thread when N is small (tiles stay multiples of 32 columns).
  const int64_t threads = at::get_num_threads();
  while (tile_n > 32 && (N + tile_n - 1) / tile_n < 2 * threads) tile_n /= 2;
  const int64_t scratch_floats = simd ? kSimdTileN * kSimdTileK : kGemmTileN * kGemmTileK;
  const int64_t tiles = (N + tile_n - 1) / tile_n;
  at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> scratch(scratch_floats);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * tile_n;
      tile_fn(n0, std::min(N, n0 + tile_n), scratch.data());
    }
  });
}

}  // namespace

void tiled_gemm_dense(const float* x, int64_t M, int64_t K, const float* w, int64_t N, Isa isa,
                      float* y) {
  const bool simd = isa != Isa::kPortable;
  run_tiled(N, simd, [&](int64_t n0, int64_t n1, float* scratch) {
    if (simd)
      tiled_gemm_dense_simd(isa >= Isa::kAvx512, x, M, K, w, N, n0, n1, y, scratch);
    else
      for (int64_t t = n0; t < n1; t += kGemmTileN)
        tiled_gemm_dense_tile(x, M, K, w, N, t, std::min(n1, t + kGemmTileN), y, scratch);
  });
}

void tiled_gemm_bcq(const float* x, int64_t M, const BcqWeight& w, Isa isa, float* y) {
  const bool simd = isa != Isa::kPortable;
  run_tiled(w.N, simd, [&](int64_t n0, int64_t n1, float* scratch) {
    if (simd)
      tiled_gemm_bcq_simd(isa >= Isa::kAvx512, x, M, w, n0, n1, y, scratch);
    else
      for (int64_t t = n0; t < n1; t += kGemmTileN)
        tiled_gemm_bcq_tile(x, M, w, t, std::min(n1, t + kGemmTileN), y, scratch);
  });
}

// Threads over 64-column tiles of y, each expanding its weight rows once into bf16 for the
// whole K.
void tiled_gemm_bcq_amx(const uint16_t* x, int64_t M_padded, int64_t M, const BcqWeight& w,
                        float* y) {
  const int64_t tiles = (w.N + kAmxTileN - 1) / kAmxTileN;
  at::parallel_for(0, tiles, 1, [&](int64_t t0, int64_t t1) {
    std::vector<uint16_t> scratch(kAmxTileN * w.Kp);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t n0 = t * kAmxTileN;
      tiled_gemm_bcq_amx_tile(x, M_padded, w, n0, std::min(w.N, n0 + kAmxTileN), y, M, scratch.data());
    }
  });
}

}  // namespace cpu
}  // namespace torch_lowbit
