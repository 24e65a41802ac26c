// int8-activation GEMM for many rows (prefill, batched encoders): y[M, N] = x[M, K] @ W^T for a
// BCQ weight whose groups are uniform grids (alpha_b = alpha_0 * 2^b: what rtn and mse, the
// default, produce). Such a group is w = low + step * code with an unsigned code of `bits` bits
// (docs/FORMAT.md), so with x quantized to int8 per row and per block of kInt8Block columns,
//
//   y[m, n] = sum_g ( step[g, n] * sum_{blocks j of g} sx[m, j] * sum_{k in j} xq[m, k] code[n, k]
//                     + low[g, n] * sum_{blocks j of g} sx[m, j] * sum_{k in j} xq[m, k] )
//
// the inner sums are integer dot products of u8 codes and s8 activations: vpdpbusd (AVX-512
// VNNI: 64 multiply-adds an instruction), vpmaddubsw + vpmaddwd on AVX2, against 16 (fp32 FMA on
// zmm) for the tiled fp32 kernel: exactly the product of the int8 activations and W. Each thread
// expands a strip of weight rows to codes once (never the whole weight) and runs every row of x
// over it. Kernels take raw pointers, no torch headers.
#pragma once
#include <cstdint>

#include "common/bcq_format.h"
#include "cpu/isa/isa.h"

namespace torch_lowbit {
namespace cpu {

// Activations per int8 scale, as llama.cpp's Q8_0: 0.5% relative output error on Gaussian
// activations (64: 0.6%, 128: 0.65%), 1.2% with 0.5% of the channels x30 (64: 1.6%, 128: 2.2%).
constexpr int64_t kInt8Block = 32;

struct Int8Activations {
  const int8_t* q;          // [M][Kp], zero past K
  const float* scale;       // [M][Kp / kInt8Block]
  const float* group_sum;   // [M][Kp / G]: sum of the int8 activations (scaled) over each weight group
  int64_t M, Kp, ngroups;
};

// x fp32 [M][K] -> the int8 activations (q, scale, group_sum sized as above); G the weight's
// effective group size. Symmetric, scale = max |x| / 127 of the block.
void quantize_activations_int8(const float* x, int64_t M, int64_t K, int64_t Kp, int64_t G,
                               int8_t* q, float* scale, float* group_sum);

// Every group of every row a uniform grid (exact compare: powers of two scale fp16 and fp32
// without rounding); the int8 GEMM needs it.
bool bcq_weight_uniform(const BcqWeight& w, Isa isa);

// The int8 GEMM runs on AVX2 and AVX-512 (VNNI where the CPU has it); on AVX2 up to 7 bits
// (vpmaddubsw's int16 pair sums: 2 x 127 x (2^bits - 1) must fit).
bool int8_gemm_runs(int64_t bits, Isa isa);
// Whether `isa` runs the vpdpbusd kernel (AVX-512 with VNNI) rather than the AVX2 one.
bool int8_gemm_on_vnni(Isa isa);

// A process switch (tests and benchmarks compare the routes it chooses between); on by default.
bool int8_gemm_enabled();
void set_int8_gemm_enabled(bool on);

// y fp32 [M][N]; threads over strips of weight rows.
void int8_gemm_bcq(const Int8Activations& a, const BcqWeight& w, Isa isa, float* y);

// ---- per-ISA strips (int8_gemm_avx2.cpp, int8_gemm_avx512vnni.cpp) ----
// y[:, n0 : n0 + cols) for every row of a; `scratch` holds int8_strip_scratch_bytes(w, cols).
constexpr int64_t kInt8StripColsAvx2 = 16;
constexpr int64_t kInt8StripColsAvx512 = 32;
constexpr int64_t kInt8StripAccRows = 4;  // the AVX2 kernel's rows of fp32 accumulators in memory

// One strip's scratch, laid out for `cols` weight rows.
struct Int8Strip {
  uint8_t* codes;  // [Kp / 4][cols][4]: one vector of cols/16 (AVX-512) or cols/8 (AVX2) rows x 4 k
  float* step;     // [ngroups][cols]: 2 alpha_0
  float* low;      // [ngroups][cols]: offset - alpha_0 (2^bits - 1)
  float* acc;      // [kInt8StripAccRows][cols] (AVX2 only)
};

inline int64_t int8_strip_scratch_bytes(const BcqWeight& w, int64_t cols) {
  return w.Kp * cols + (2 * w.ngroups() + kInt8StripAccRows) * cols * 4;
}

inline Int8Strip int8_strip(const BcqWeight& w, int64_t cols, uint8_t* scratch) {
  Int8Strip s;
  s.codes = scratch;
  s.step = reinterpret_cast<float*>(scratch + w.Kp * cols);
  s.low = s.step + w.ngroups() * cols;
  s.acc = s.low + w.ngroups() * cols;
  return s;
}
void int8_gemm_strip_avx2(const Int8Activations& a, const BcqWeight& w, int64_t n0, float* y,
                          uint8_t* scratch);
void int8_gemm_strip_avx512vnni(const Int8Activations& a, const BcqWeight& w, int64_t n0, float* y,
                                uint8_t* scratch);
bool bcq_weight_uniform_avx2(const BcqWeight& w);
void quantize_activations_int8_avx2(const float* x, int64_t M, int64_t K, int64_t Kp, int64_t G,
                                    int8_t* q, float* scale, float* group_sum);

}  // namespace cpu
}  // namespace torch_lowbit
