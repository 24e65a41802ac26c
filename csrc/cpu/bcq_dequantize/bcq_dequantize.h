// W = bcq_dequantize(planes, alpha, offset) on the CPU: raw pointers, no torch headers.
#pragma once
#include <cstdint>

#include "common/bcq_format.h"
#include "cpu/isa/isa.h"

namespace torch_lowbit {
namespace cpu {

// out[(n - n0) * ld + (k - k0)] = W[n, k] for n in [n0, n1), k in [k0, k1).
void bcq_dequantize_block(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                          float* out, int64_t ld);
// The same, 8 weights per AVX2 instruction (bcq_dequantize_avx2.cpp).
void bcq_dequantize_block_avx2(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                               float* out, int64_t ld);
// The whole weight into out[N, K] on the `isa` path, threads over blocks of rows.
void bcq_dequantize(const BcqWeight& w, Isa isa, float* out);

}  // namespace cpu
}  // namespace torch_lowbit
