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
//   tiled kernel wins everywhere: rows * bits <= 32. Not yet measured there with int8 tables.
// - bf16 activations on a CPU with AMX: the tiled kernel runs on the tile unit and its cost is
//   mostly the once-per-call weight expansion, so it overtakes LUT from about 4 rows:
//   rows * bits <= 12.
// Past the LUT range (and but for AMX) the weight is expanded block by block and multiplied by
// ATen's dense sgemm (cpu/bcq_linear/dense_gemm_bcq.cpp): on AMD EPYC Zen 3 that ran 0.91-1.08x
// F.linear fp32 on all-MiniLM shapes at m = 1536 where our tiled AVX2 kernel ran 0.42-0.46x
// (and 4096 x 4096 m = 256: 0.56x). The tiled kernel stays the explicit tiled_gemm op.
#pragma once
#include <cstdint>

#include "cpu/isa/isa.h"
#include "cpu/lut_gemm/lut_gemm.h"

namespace torch_lowbit {
namespace cpu {

enum class BcqLinearKernel { kLut, kDense, kTiledAmx };

constexpr int64_t kLutMaxRowBits = 32;
constexpr int64_t kLutMaxRowBitsAvx2Int8 = 256;
constexpr int64_t kLutMaxRowBitsAmxBf16 = 12;

// The tiled low-bit GEMM runs bf16 activations on AMX tiles where the CPU has them.
inline bool tiled_on_amx(Isa isa, bool bf16) { return bf16 && isa == Isa::kAmx; }

inline BcqLinearKernel select_bcq_linear(int64_t rows, int64_t bits, Isa isa, bool bf16,
                                         LutTables tables) {
  const bool amx = tiled_on_amx(isa, bf16);
  const int64_t most = amx ? kLutMaxRowBitsAmxBf16
                       : (isa == Isa::kAvx2 && tables == LutTables::kInt8) ? kLutMaxRowBitsAvx2Int8
                                                                           : kLutMaxRowBits;
  if (rows * bits <= most) return BcqLinearKernel::kLut;
  return amx ? BcqLinearKernel::kTiledAmx : BcqLinearKernel::kDense;
}

}  // namespace cpu
}  // namespace torch_lowbit
