// Which CPU kernel runs a low-bit linear call: the shape- and ISA-dependent choice inside the
// CPU family (torch_lowbit/dispatch.py only picks the family). The bcq_linear op and the
// explicit tiled_gemm_bcq op both ask here.
//
// LUT-GEMM reads every bit-plane once per activation row (cost ~ rows * bits); the tiled kernel
// expands each weight tile once (cost ~ bits) and reuses it across rows with fp32 FMAs (cost ~
// rows). Measured with `python benchmarks/cpu_gemm.py --threads 2` (benchmarks/results/):
// - AVX2 with int8 tables (AMD EPYC Zen 3, 2 threads, 11008x4096): the int8 LUT beats the AVX2
//   tiled kernel at every m up to 64 for 2-4 bits (by ~2x at m = 64); the cost ratio puts the
//   crossover near rows * bits = 256.
// - AVX-512 (Intel Xeon, 2 threads, exact fp32 tables): LUT wins at m <= 4 for every shape and
//   bit width; at m = 16 it wins for 2-bit, ties at 3-bit and loses for 4/8-bit; at m = 64 the
//   tiled kernel wins everywhere: rows * bits <= 32 (the exact-table rule; int8 tables: below).
// - bf16 activations on a CPU with AMX: the tiled kernel runs on the tile unit and its cost is
//   mostly the once-per-call weight expansion, so it overtakes LUT from about 4 rows:
//   rows * bits <= 12.
// Past the LUT range (and but for AMX) the weight is expanded block by block and multiplied by
// ATen's dense sgemm (cpu/bcq_linear/dense_gemm_bcq.cpp): on AMD EPYC Zen 3 that ran 0.91-1.08x
// F.linear fp32 on all-MiniLM shapes at m = 1536 where our tiled AVX2 kernel ran 0.42-0.46x
// (and 4096 x 4096 m = 256: 0.56x). The tiled kernel stays the explicit tiled_gemm op.
// Against that sgemm route the AVX2 int8 LUT still wins at any row count for 2-bit weights and
// for 3-bit weights of LLM size (AMD EPYC Zen 3, 2 threads, `benchmarks/cpu_gemm.py --m 16 64
// 256 --bits 3 --shapes 11008x4096 28672x8192 --tag many_rows` and a 4096 x 4096 probe at
// m = 128-512): 3-bit 4096 x 4096 LUT 0.63-0.86x the sgemm route's time, 11008 x 4096 m = 256
// 217 vs 273 ms, 28672 x 8192 m = 256 1240 vs 1385 ms; 2-bit 0.62-0.65x; but on all-MiniLM's
// 1536 x 384 layers at m = 1536 3-bit LUT took 1.3-1.6x as long (and 4-bit ties, 8-bit loses
// 2-3x everywhere). So: 2-bit always LUT, 3-bit LUT from 2^22 weights.
// The int8 rule holds on AVX-512 CPUs too, measured there with the AVX2 int8 kernel (before the
// AVX-512 ones existed): Intel Xeon (AVX-512/AMX), 2 threads, 11008x4096 3-bit m = 16 fp32: LUT
// 5.5 ms, the sgemm route 21.6 ms (`benchmarks/cpu_gemm.py --m 1 16 --bits 2 3 --shapes
// 11008x4096`). But there ATen's AVX-512 sgemm beats the LUT on small 2-bit layers (384 x 1536
// at m = 1536: 7.9 vs 5.3 ms), so on AVX-512 2-bit layers also need 2^22 weights.
// The AVX-512 vpermb + vpdpbusd int8 kernel (VBMI/VNNI CPUs) beats the sgemm route at every row
// count measured for 2-4 bits: AMD EPYC Zen 5, 2 threads, `python benchmarks/lut_crossover.py`
// (benchmarks/results/lut_crossover_amd-epyc-zen-5.md), m = 64-1536 on 11008x4096, 4096x4096,
// 1536x384 and 384x1536: LUT 0.24-0.54x the sgemm route's time from m = 128-256 on, ties (0.92-
// 1.2x, within noise) at m = 64-128. So there 2-4 bit layers take the LUT at any row count; 5-8 bits
// keep the row range (a lookup per plane: 8 bits cost ~2.7x 3 bits). Not yet measured on Intel,
// whose sgemm is faster; the vpshufb AVX-512 kernel keeps the rules above.
#pragma once
#include <cstdint>

#include "cpu/int8_gemm/int8_gemm.h"
#include "cpu/isa/isa.h"
#include "cpu/lut_gemm/lut_gemm.h"

namespace torch_lowbit {
namespace cpu {

enum class BcqLinearKernel { kLut, kDense, kTiledAmx, kInt8Gemm };

inline const char* bcq_linear_kernel_name(BcqLinearKernel k) {
  switch (k) {
    case BcqLinearKernel::kLut: return "lut";
    case BcqLinearKernel::kDense: return "dense";
    case BcqLinearKernel::kTiledAmx: return "tiled_amx";
    case BcqLinearKernel::kInt8Gemm: return "int8_gemm";
  }
  return "?";
}

constexpr int64_t kLutMaxRowBits = 32;
constexpr int64_t kLutMaxRowBitsInt8 = 256;
constexpr int64_t kLutMaxRowBitsAmxBf16 = 12;
constexpr int64_t kLutAnyRowsInt8Weights = int64_t{1} << 22;
constexpr int64_t kLutAnyRowsVpermbBits = 4;

// The tiled low-bit GEMM runs bf16 activations on AMX tiles where the CPU has them.
inline bool tiled_on_amx(Isa isa, bool bf16) { return bf16 && isa == Isa::kAmx; }

// rows x (N x K weights) at `bits`.
inline BcqLinearKernel select_bcq_linear(int64_t rows, int64_t bits, int64_t weights, Isa isa,
                                         bool bf16, LutTables tables, LutLookup lookup) {
  const bool amx = tiled_on_amx(isa, bf16);
  // int8 tables on every SIMD ISA (AVX2: vpshufb; AVX-512: vpermb + vpdpbusd or vpshufb).
  const bool int8_lut = !amx && isa >= Isa::kAvx2 && tables == LutTables::kInt8;
  if (int8_lut && isa >= Isa::kAvx512 && lookup == LutLookup::kVpermb && bits <= kLutAnyRowsVpermbBits)
    return BcqLinearKernel::kLut;
  const int64_t most = amx ? kLutMaxRowBitsAmxBf16 : int8_lut ? kLutMaxRowBitsInt8 : kLutMaxRowBits;
  if (rows * bits <= most) return BcqLinearKernel::kLut;
  const bool large = weights >= kLutAnyRowsInt8Weights;
  // Past the row range: 3-bit from 2^22 weights; 2-bit the same on AVX-512, any size on AVX2.
  if (int8_lut && (bits == 3 ? large : bits <= 2 && (large || isa == Isa::kAvx2)))
    return BcqLinearKernel::kLut;
  return amx ? BcqLinearKernel::kTiledAmx : BcqLinearKernel::kDense;
}

// The int8-activation GEMM (cpu/int8_gemm/) for uniform-grid weights (rtn / mse) from
// kInt8GemmMinRows rows, wherever activations may be int8 (the int8 tables setting; "exact"
// keeps fp32). AMD EPYC Zen 5, 2 threads, `python benchmarks/lut_crossover.py --threads 2` and
// `--isa avx2 --tag forced-avx2` (benchmarks/results/lut_crossover_amd-epyc-zen-5*.md), on
// 11008x4096, 4096x4096, 1536x384 and 384x1536 at m = 16-1536, 2-4 bits:
// - vpdpbusd (AVX-512 VNNI): 0.5-0.9x the time of the best other kernel from m = 32 at every bit
//   width and shape (11008x4096 3-bit m = 256: 19.7 ms, the vpermb LUT 34.6); a tie at m = 16.
// - AVX2 (vpmaddubsw): 3-4 bits 0.55-0.95x from m = 32 (ties on 384x1536 3-bit at m = 32-64);
//   2-bit loses or ties against the LUT, whose cost falls with the bits (4096x4096 m = 256:
//   29.2 vs 23.4 ms), so 2-bit weights keep the LUT there. Not yet measured on Zen 3 or Intel.
constexpr int64_t kInt8GemmMinRows = 32;
constexpr int64_t kInt8GemmMinBitsAvx2 = 3;

inline bool int8_gemm_candidate(int64_t rows, int64_t bits, Isa isa, bool bf16, LutTables tables) {
  return tables == LutTables::kInt8 && int8_gemm_enabled() && !tiled_on_amx(isa, bf16) && rows >= kInt8GemmMinRows &&
         int8_gemm_runs(bits, isa) && (int8_gemm_on_vnni(isa) || bits >= kInt8GemmMinBitsAvx2);
}

// The same choice, with the int8 GEMM where `uniform()` (asked only when it could run) says
// the weight's grids allow it.
template <typename Uniform>
inline BcqLinearKernel select_bcq_linear(int64_t rows, int64_t bits, int64_t weights, Isa isa, bool bf16,
                                         LutTables tables, LutLookup lookup, Uniform uniform) {
  if (int8_gemm_candidate(rows, bits, isa, bf16, tables) && uniform()) return BcqLinearKernel::kInt8Gemm;
  return select_bcq_linear(rows, bits, weights, isa, bf16, tables, lookup);
}

}  // namespace cpu
}  // namespace torch_lowbit
