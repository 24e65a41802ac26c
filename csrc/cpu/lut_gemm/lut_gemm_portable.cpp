// LUT-GEMM on the CPU, portable version: one 256-entry table of signed sums per 8 activations,
// so each byte of a bit-plane costs one lookup and one add instead of 8 multiply-adds.
#include <cstring>

#include "cpu/lut_gemm/lut_gemm.h"

namespace torch_lowbit {
namespace cpu {

void lut_build_tables(const float* x, int64_t K, int64_t Kp, int64_t group_size, float* tables,
                      float* group_sums) {
  const int64_t chunks = Kp / 8;
  for (int64_t g = 0; g < Kp / group_size; ++g) group_sums[g] = 0.f;
  for (int64_t i = 0; i < chunks; ++i) {
    float xs[8];
    float total = 0.f;
    for (int j = 0; j < 8; ++j) {
      const int64_t k = i * 8 + j;
      xs[j] = k < K ? x[k] : 0.f;  // padding columns read as zero activations
      total += xs[j];
    }
    group_sums[(i * 8) / group_size] += total;
    float* t = tables + i * kLutEntries;
    t[0] = -total;
    // Entry c differs from c without its lowest set bit j by flipping -x[j] to +x[j].
    for (int c = 1; c < 256; ++c) {
      const int low = c & -c;
      t[c] = t[c ^ low] + 2.f * xs[__builtin_ctz(c)];
    }
  }
}

void lut16_build_tables(const float* x, int64_t K, int64_t Kp, int64_t group_size, float* tables,
                        float* group_sums) {
  for (int64_t g = 0; g < Kp / group_size; ++g) group_sums[g] = 0.f;
  for (int64_t i = 0; i < Kp / 4; ++i) {
    float xs[4];
    float total = 0.f;
    for (int j = 0; j < 4; ++j) {
      const int64_t k = i * 4 + j;
      xs[j] = k < K ? x[k] : 0.f;
      total += xs[j];
    }
    group_sums[(i * 4) / group_size] += total;
    float* t = tables + i * kLut16Entries;
    t[0] = -total;
    for (int c = 1; c < 16; ++c) t[c] = t[c & (c - 1)] + 2.f * xs[__builtin_ctz(c)];
  }
}

void lut_gemm_rows(const float* tables, const float* group_sums, int64_t M, const BcqWeight& w,
                   int64_t n0, int64_t n1, float* y) {
  const int64_t rb = w.row_bytes();
  const int64_t ng = w.ngroups();
  const int64_t chunks_per_group = w.group_size / 8;
  const int64_t table_stride = rb * kLutEntries;
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t m = 0; m < M; ++m) {
      const float* tm = tables + m * table_stride;
      float acc = 0.f;
      for (int64_t g = 0; g < ng; ++g) {
        for (int64_t b = 0; b < w.bits; ++b) {
          const int64_t c0 = g * chunks_per_group;
          const uint8_t* p = w.planes + w.panel_offset(b, n / kPanelRows, c0) + n % kPanelRows;
          const float* t = tm + c0 * kLutEntries;
          float s = 0.f;
          for (int64_t i = 0; i < chunks_per_group; ++i) s += t[i * kLutEntries + p[i * kPanelRows]];
          acc += w.alpha_at(b, g, n) * s;
        }
        acc += w.offset_at(g, n) * group_sums[m * ng + g];
      }
      y[m * w.N + n] = acc;
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit
