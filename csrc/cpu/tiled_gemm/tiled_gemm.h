// Tiled GEMM on the CPU: y[M, N] = x[M, K] @ W[N, K]^T with W dense fp32 or BCQ, expanded tile
// by tile (never the whole weight). Kernels take raw pointers (no torch headers); the
// tiled_gemm_* drivers own threading and are what the bindings call.
#pragma once
#include <cstdint>

#include "common/bcq_format.h"
#include "cpu/isa/isa.h"

namespace torch_lowbit {
namespace cpu {

// ---- drivers (tiled_gemm.cpp): threads over column tiles of y ----
void tiled_gemm_dense(const float* x, int64_t M, int64_t K, const float* w, int64_t N, Isa isa,
                      float* y);
void tiled_gemm_bcq(const float* x, int64_t M, const BcqWeight& w, Isa isa, float* y);
// bf16 activations on AMX (tiled_gemm_amx.cpp): x bf16 bits padded with zeros to
// [M_padded (a multiple of 32)][Kp]; y fp32 [M, N]. The caller holds AMX permission (Isa::kAmx).
void tiled_gemm_bcq_amx(const uint16_t* x, int64_t M_padded, int64_t M, const BcqWeight& w,
                        float* y);

// ---- portable tiles ----
constexpr int64_t kGemmTileN = 64;
constexpr int64_t kGemmTileK = 256;
// Computes y[:, n0:n1) (n1 - n0 <= kGemmTileN); scratch holds kGemmTileN * kGemmTileK floats.
void tiled_gemm_dense_tile(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                           int64_t n0, int64_t n1, float* y, float* scratch);
void tiled_gemm_bcq_tile(const float* x, int64_t M, const BcqWeight& w, int64_t n0, int64_t n1,
                         float* y, float* scratch);

// ---- SIMD tiles on the microkernels: y[:, n0:n1) for at most kSimdTileN rows of W, n0 a
// multiple of 32; scratch holds kSimdTileK * kSimdTileN floats ----
constexpr int64_t kSimdTileN = 256;
constexpr int64_t kSimdTileK = 256;
void tiled_gemm_dense_simd(bool avx512, const float* x, int64_t M, int64_t K, const float* w,
                           int64_t N, int64_t n0, int64_t n1, float* y, float* scratch);
void tiled_gemm_bcq_simd(bool avx512, const float* x, int64_t M, const BcqWeight& w, int64_t n0,
                         int64_t n1, float* y, float* scratch);

// ---- AMX tile: y[m, n0:n1) for m < M; n0 a multiple of 32, n1 - n0 <= kAmxTileN; scratch
// holds kAmxTileN * Kp bf16 ----
constexpr int64_t kAmxTileN = 64;
void tiled_gemm_bcq_amx_tile(const uint16_t* x, int64_t M_padded, const BcqWeight& w, int64_t n0,
                             int64_t n1, float* y, int64_t M, uint16_t* scratch);

}  // namespace cpu
}  // namespace torch_lowbit
