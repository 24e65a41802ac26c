// SIMD GEMM building blocks shared by the tiled GEMM and the im2win conv (gemm_avx2.cpp,
// gemm_avx512.cpp): raw fp32 pointers, no torch headers.
//
// A strip is `cols` (32 for AVX-512, 16 for AVX2) consecutive rows of W expanded to fp32 as
// [k][cols]; gemm_rows multiplies rows of A, wherever they lie, by one strip.
#pragma once
#include <cstdint>

#include "common/bcq_format.h"

namespace torch_lowbit {
namespace cpu {

constexpr int64_t kStripColsAvx512 = 32;
constexpr int64_t kStripColsAvx2 = 16;

// A strip from the bit-planes (n0 a multiple of 16, k0 of 8; rows past N are zero).
void expand_bcq_strip_avx512(const BcqWeight& w, int64_t n0, int64_t k0, int64_t kb, float* dst);
void expand_bcq_strip_avx2(const BcqWeight& w, int64_t n0, int64_t k0, int64_t kb, float* dst);
// Rows [0, rows) of a row-major [*, K] matrix (row stride ld) as a 32-column strip [K][32]
// (rows past `rows` zero), by 16 x 16 in-register transposes.
void pack_strip_avx512(const float* src, int64_t ld, int64_t rows, int64_t K, float* strip);
// dst[j * ld_dst + i] = src[i * ld_src + j] for i < rows, j < cols, in 16 x 16 register blocks.
void transpose_avx512(const float* src, int64_t ld_src, int64_t rows, int64_t cols, float* dst,
                      int64_t ld_dst);
// Adds a[M, kb] @ strip into c[M, <= cols] (row stride ldc), where a[i] points at row i's
// first k: rows of A may lie anywhere (strided matrix rows, im2win pixels).
void gemm_rows_avx512(const float* const* a, int64_t M, int64_t kb, const float* strip, float* c,
                      int64_t ldc, int64_t cols);
void gemm_rows_avx2(const float* const* a, int64_t M, int64_t kb, const float* strip, float* c,
                    int64_t ldc, int64_t cols);

}  // namespace cpu
}  // namespace torch_lowbit
