// CPU kernels of torch_lowbit: plain C++ over raw fp32 pointers, no torch headers.
// Each function computes one slice of the work ([n0, n1) output features, or rows of
// output pixels) so that the ATen wrapper (cpu_ops.cpp) owns threading via at::parallel_for.
#pragma once
#include <cstdint>

#include "../bcq_format.h"
#include "../conv_shape.h"

namespace torch_lowbit {
namespace cpu {

// ---- BCQ ----
// out[(n - n0) * ld + (k - k0)] = W[n, k] for n in [n0, n1), k in [k0, k1).
void bcq_dequantize_block(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                          float* out, int64_t ld);

// ---- LUT-GEMM ----
// Tables for one activation row: tables[i * 256 + c] = sum_j (bit j of c ? +x : -x)[8 i + j]
// for the Kp / 8 chunks of x (x read up to K, zero beyond), and group_sums[g] = sum of x in group g.
constexpr int64_t kLutEntries = 256;
void lut_build_tables(const float* x, int64_t K, int64_t Kp, int64_t group_size, float* tables,
                      float* group_sums);
// y[m * N + n] for m < M, n in [n0, n1), from the tables of M rows (strided Kp / 8 * 256).
void lut_gemm_rows(const float* tables, const float* group_sums, int64_t M, const BcqWeight& w,
                   int64_t n0, int64_t n1, float* y);

// ---- tiled GEMM: y[M, N] = x[M, K] @ W[N, K]^T ----
constexpr int64_t kGemmTileN = 64;
constexpr int64_t kGemmTileK = 256;
// Computes y[:, n0:n1) (n1 - n0 <= kGemmTileN); scratch holds kGemmTileN * kGemmTileK floats.
void tiled_gemm_dense_tile(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                           int64_t n0, int64_t n1, float* y, float* scratch);
void tiled_gemm_bcq_tile(const float* x, int64_t M, const BcqWeight& w, int64_t n0, int64_t n1,
                         float* y, float* scratch);

// ---- im2win conv2d ----
constexpr int64_t kConvTileO = 16;

// Window buffer rows for (n, oh) in [row0, row1) of the N * OH rows.
void im2win_transform(const float* x_nhwc, const ConvShape& s, int64_t row0, int64_t row1,
                      float* win);
// Weight tile for group g, output channels [o0, o0 + ob) of that group, as [S][R][Cg][ob], from
// a BCQ weight whose rows are the flattened [Cg * R * S] filters; row_scratch holds Cg * R * S
// floats. (A dense tile is im2win_strip_dense with width ob.)
void im2win_weight_tile_bcq(const BcqWeight& w, const ConvShape& s, int64_t g, int64_t o0,
                            int64_t ob, float* tile, float* row_scratch);
// out_nhwc[n, oh, :, g * Og + o0 + j] for rows in [row0, row1), j < ob, from one weight tile:
// the portable compute loop (the SIMD paths use im2win_gemm_rows below).
void im2win_compute_tile_portable(const float* win, const float* tile, const float* bias,
                                  const ConvShape& s, int64_t g, int64_t o0, int64_t ob,
                                  int64_t row0, int64_t row1, float* out_nhwc);

// ---- SIMD LUT-GEMM (lut_gemm_avx512.cpp, lut_gemm_avx2.cpp) ----
// The scales of one panel and group are bits + 1 runs of 16 values, each in its own page
// ([bits, groups, N] layout), so no hardware prefetcher follows them and every panel would
// wait on bits + 1 cache misses per group when the weight is cold. The LUT kernels fetch
// those of the panel kLutScaleAhead ahead into L2. Measured (m = 1, cold weights, 2 threads):
// 28672x8192 3-bit 12.5 -> 7.8-8.5 ms, 11008x4096 1.49 -> 1.2-1.35 ms; 8 ahead was no better.
constexpr int64_t kLutScaleAhead = 4;
// The first scale of each of those runs for group g of panel p + kLutScaleAhead (count: bits + 1),
// or 0 when p is among the last panels.
inline int panel_scales_ahead(const BcqWeight& w, int64_t g, int64_t p, const void** out) {
  if (p + kLutScaleAhead >= w.panels()) return 0;
  const int64_t n = (p + kLutScaleAhead) * kPanelRows;
  for (int64_t b = 0; b < w.bits; ++b) out[b] = w.alpha_ptr(b, g, n);
  out[w.bits] = w.offset_ptr(g, n);
  return static_cast<int>(w.bits) + 1;
}
// Tables of mu = 4: tables16[i * 16 + c] = sum_j (bit j of c ? +x : -x)[4 i + j] for the Kp / 4
// chunks, and group_sums as above.
constexpr int64_t kLut16Entries = 16;
void lut16_build_tables(const float* x, int64_t K, int64_t Kp, int64_t group_size, float* tables,
                        float* group_sums);
// y[m * N + n] for m < M and the rows of panels [p0, p1), from tables16 of M rows.
void lut_gemm_panels_avx512(const float* tables, const float* group_sums, int64_t M,
                            const BcqWeight& w, int64_t p0, int64_t p1, float* y);
void lut_gemm_panels_avx2(const float* tables, const float* group_sums, int64_t M,
                          const BcqWeight& w, int64_t p0, int64_t p1, float* y);

// ---- SIMD GEMM building blocks (tiled_gemm_avx512.cpp, tiled_gemm_avx2.cpp) ----
// A strip is `cols` (32 for AVX-512, 16 for AVX2) consecutive rows of W expanded to fp32 as
// [k][cols]. expand_bcq_strip fills one from the bit-planes (n0 a multiple of 16, k0 of 8; rows
// past N are zero).
constexpr int64_t kStripColsAvx512 = 32;
constexpr int64_t kStripColsAvx2 = 16;
void expand_bcq_strip_avx512(const BcqWeight& w, int64_t n0, int64_t k0, int64_t kb, float* dst);
void expand_bcq_strip_avx2(const BcqWeight& w, int64_t n0, int64_t k0, int64_t kb, float* dst);
// Rows [0, rows) of a row-major [*, K] matrix (row stride ld) as a 32-column strip [K][32]
// (rows past `rows` zero), by 16 x 16 in-register transposes.
void pack_strip_avx512(const float* src, int64_t ld, int64_t rows, int64_t K, float* strip);
// dst[j * ld_dst + i] = src[i * ld_src + j] for i < rows, j < cols, in 16 x 16 register blocks.
void transpose_avx512(const float* src, int64_t ld_src, int64_t rows, int64_t cols, float* dst,
                      int64_t ld_dst);
// gemm_rows adds a[M, kb] @ strip into c[M, <= cols] (row stride ldc), where a[i] points at
// row i's first k: rows of A may lie anywhere (strided matrix rows, im2win pixels).
void gemm_rows_avx512(const float* const* a, int64_t M, int64_t kb, const float* strip, float* c,
                      int64_t ldc, int64_t cols);
void gemm_rows_avx2(const float* const* a, int64_t M, int64_t kb, const float* strip, float* c,
                    int64_t ldc, int64_t cols);

// Tiled GEMM on those blocks (tiled_gemm.cpp): y[:, n0:n1) for at most kSimdTileN rows of W,
// n0 a multiple of 32; scratch holds kSimdTileK * kSimdTileN floats.
constexpr int64_t kSimdTileN = 256;
constexpr int64_t kSimdTileK = 256;
void tiled_gemm_dense_simd(bool avx512, const float* x, int64_t M, int64_t K, const float* w,
                           int64_t N, int64_t n0, int64_t n1, float* y, float* scratch);
void tiled_gemm_bcq_simd(bool avx512, const float* x, int64_t M, const BcqWeight& w, int64_t n0,
                         int64_t n1, float* y, float* scratch);

// AMX (tiled_gemm_amx.cpp): y[m, n0:n1) for m < M, x bf16 bits padded to [M_padded (a multiple of
// 32)][Kp] with zeros; n0 a multiple of 32, n1 - n0 <= kAmxTileN; scratch holds
// kAmxTileN * Kp bf16. The caller holds AMX permission (isa.h: Isa::kAmx).
constexpr int64_t kAmxTileN = 64;
void tiled_gemm_bcq_amx(const uint16_t* x, int64_t M_padded, const BcqWeight& w, int64_t n0,
                        int64_t n1, float* y, int64_t M, uint16_t* scratch);

// im2win conv on the SIMD GEMM strips (im2win_conv.cpp): out_nhwc rows [row0, row1) of
// output channels [o0, o0 + cols) of group g, from a strip of the group's filters laid out in
// window order (q, r, c); out must be zeroed (or hold the bias) before.
void im2win_gemm_rows(bool avx512, const float* win, const float* strip, const ConvShape& s,
                      int64_t g, int64_t o0, int64_t cols, int64_t row0, int64_t row1, float* out);
// The strip for output channels [o0, o0 + width) of group g (zero past Og), window order;
// the dense version reads the weight already permuted to [O][S][R][Cg].
void im2win_strip_dense(const float* w_window, const ConvShape& s, int64_t g, int64_t o0,
                        int64_t width, float* strip);
// A strip whose k rows are in the stored filter order (c, r, q) moved to window order (q, r, c).
void im2win_strip_to_window(const float* flat, const ConvShape& s, int64_t width, float* strip);
void im2win_strip_bcq(bool avx512, const BcqWeight& w, const ConvShape& s, int64_t g, int64_t o0,
                      int64_t width, float* strip, float* scratch);

// ---- CPU feature report (cpuid) for `python -m torch_lowbit env` ----
const char* cpu_features();

}  // namespace cpu
}  // namespace torch_lowbit
