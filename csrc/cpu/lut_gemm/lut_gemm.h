// LUT-GEMM on the CPU: y[M, N] = x[M, K] @ W^T with W in BCQ bit-planes, through tables of
// signed activation sums (one lookup and add per weight byte or nibble instead of 8 or 4 FMAs).
// Kernels take raw pointers (no torch headers); lut_gemm() is the driver the binding calls.
#pragma once
#include <cstdint>

#include "common/bcq_format.h"
#include "cpu/isa/isa.h"

namespace torch_lowbit {
namespace cpu {

// Which tables the SIMD paths use: int8 (the default: `vpshufb` lookups, ~0.6-0.8% relative
// output error, about what llama.cpp's Q8_0 activations cost) or exact fp32 (`vpermps`). Process
// wide; TORCH_LOWBIT_LUT_TABLES=exact at load or set_lut_tables() changes it. The portable path
// always uses exact fp32 tables.
enum class LutTables : int { kInt8 = 0, kExact = 1 };
LutTables lut_tables();
void set_lut_tables(LutTables tables);
const char* lut_tables_name(LutTables tables);

// Which int8 kernel the AVX-512 paths run: vpermb + vpdpbusd (lut_gemm_int8_avx512vnni.cpp, the
// default where the CPU has VBMI and VNNI) or vpshufb on zmm (lut_gemm_int8_avx512.cpp, the only
// one on AVX-512 CPUs without them; tests force it to cover it on CPUs with them). The AVX2 path
// is always vpshufb. set_lut_lookup throws std::invalid_argument for vpermb on a CPU without it.
enum class LutLookup : int { kVpshufb = 0, kVpermb = 1 };
LutLookup lut_lookup();
void set_lut_lookup(LutLookup lookup);
const char* lut_lookup_name(LutLookup lookup);

// The driver: tables per block of activation rows, then threads over 16-row panels (SIMD) or
// rows (portable). x fp32 [M, K] contiguous, y fp32 [M, N].
void lut_gemm(const float* x, int64_t M, const BcqWeight& w, Isa isa, LutTables tables, float* y);
// Activation rows per table block: the panel kernels see at most this many rows at a time.
constexpr int64_t kLutRowsPerBlock = 8;

// ---- portable (lut_gemm_portable.cpp): tables of mu = 8 ----
// Tables for one activation row: tables[i * 256 + c] = sum_j (bit j of c ? +x : -x)[8 i + j]
// for the Kp / 8 chunks of x (x read up to K, zero beyond), and group_sums[g] = sum of x in group g.
constexpr int64_t kLutEntries = 256;
void lut_build_tables(const float* x, int64_t K, int64_t Kp, int64_t group_size, float* tables,
                      float* group_sums);
// y[m * N + n] for m < M, n in [n0, n1), from the tables of M rows (strided Kp / 8 * 256).
void lut_gemm_rows(const float* tables, const float* group_sums, int64_t M, const BcqWeight& w,
                   int64_t n0, int64_t n1, float* y);

// ---- SIMD (lut_gemm_avx512.cpp, lut_gemm_avx2.cpp): tables of mu = 4 ----
// tables16[i * 16 + c] = sum_j (bit j of c ? +x : -x)[4 i + j] for the Kp / 4 chunks, and
// group_sums as above.
constexpr int64_t kLut16Entries = 16;
void lut16_build_tables(const float* x, int64_t K, int64_t Kp, int64_t group_size, float* tables,
                        float* group_sums);
// y[m * N + n] for m < M and the rows of panels [p0, p1), from tables16 of M rows.
void lut_gemm_panels_avx512(const float* tables, const float* group_sums, int64_t M,
                            const BcqWeight& w, int64_t p0, int64_t p1, float* y);
void lut_gemm_panels_avx2(const float* tables, const float* group_sums, int64_t M,
                          const BcqWeight& w, int64_t p0, int64_t p1, float* y);

// ---- int8 tables (lut_tables_int8.cpp, lut_gemm_int8_avx2.cpp, lut_gemm_int8_avx512.cpp) ----
// The tables of one row, per table block of 32 activations (8 chunks, 4 byte columns c = 0..3 of
// the weight, one table scale): chunk 2c (the low nibble of column c, h = 0) and 2c + 1 (its high
// nibble, h = 1) sit at block * 128 + h * 64 + c * 16 + entry. So the AVX-512 kernel loads the
// low-nibble tables of a block's four columns as one 64-byte vector and the high-nibble ones as
// the next, lane c matching the lane of the 64-byte plane load that holds column c, and the AVX2
// kernel the same for a column pair (32 bytes at + 32 * pair). The fp32 sum of x per weight group.
inline int64_t lut_int8_block(int64_t) { return 32; }
constexpr int64_t kLutInt8BlockBytes = 128;  // 8 chunks x 16 entries
inline int64_t lut_int8_table_bytes(int64_t Kp) { return Kp / 4 * 16; }
void lut_build_tables_int8(const float* x, int64_t K, int64_t Kp, int64_t group_size,
                           int8_t* tables, float* scales, float* group_sums);
// y[m * N + n] for m < M and the rows of panels [p0, p1), from the int8 tables of M rows.
void lut_gemm_panels_int8_avx2(const int8_t* tables, const float* table_scales,
                               const float* group_sums, int64_t M, const BcqWeight& w, int64_t p0,
                               int64_t p1, float* y);
void lut_gemm_panels_int8_avx512(const int8_t* tables, const float* table_scales,
                                 const float* group_sums, int64_t M, const BcqWeight& w, int64_t p0,
                                 int64_t p1, float* y);
void lut_gemm_panels_int8_avx512vnni(const int8_t* tables, const float* table_scales,
                                     const float* group_sums, int64_t M, const BcqWeight& w, int64_t p0,
                                     int64_t p1, float* y);

// The scales of one panel and group are bits + 1 runs of 16 values, each in its own page
// ([bits, groups, N] layout), so no hardware prefetcher follows them and every panel would wait
// on bits + 1 cache misses per group when the weight is cold: the SIMD kernels fetch those of
// the panel kLutScaleAhead ahead into L2 (8 ahead measured no better; benchmarks/cpu_gemm.py
// --cold).
constexpr int64_t kLutScaleAhead = 4;
// Fetches into L2 (prefetcht1) the first scale of each of those runs for group g of panel
// p + kLutScaleAhead (nothing when p is among the last panels).
inline void prefetch_scales_ahead(const BcqWeight& w, int64_t g, int64_t p) {
  if (p + kLutScaleAhead >= w.panels()) return;
  const int64_t n = (p + kLutScaleAhead) * kPanelRows;
  for (int64_t b = 0; b < w.bits; ++b) __builtin_prefetch(w.alpha_ptr(b, g, n), 0, 2);
  __builtin_prefetch(w.offset_ptr(g, n), 0, 2);
}

}  // namespace cpu
}  // namespace torch_lowbit
