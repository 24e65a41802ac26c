// The CPU LUT-GEMM driver: tables for a block of activation rows (threads over rows), then
// threads over 16-row panels (SIMD) or rows (portable). The SIMD paths use 16-entry tables
// (mu = 4), int8 (`vpshufb`) or exact fp32 (`vpermps`); the portable path 256-entry fp32 tables
// (mu = 8), which cost fewer adds per weight byte when there is no vector lookup.
#include "cpu/lut_gemm/lut_gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "cpu/isa/cpu_features.h"

namespace torch_lowbit {
namespace cpu {
namespace {

// Work per task below which a fork/join costs more than it saves: a small layer (256 x 256
// 3-bit is 24 KiB of planes) runs on the calling thread.
constexpr int64_t kPlaneBytesPerTask = 64 * 1024;

std::atomic<int>& tables_setting() {
  static std::atomic<int> setting{[] {
    const char* v = std::getenv("TORCH_LOWBIT_LUT_TABLES");
    return static_cast<int>(v != nullptr && std::strcmp(v, "exact") == 0 ? LutTables::kExact : LutTables::kInt8);
  }()};
  return setting;
}

std::atomic<int>& lookup_setting() {
  static std::atomic<int> setting{static_cast<int>(cpu_has_avx512_vbmi_vnni() ? LutLookup::kVpermb : LutLookup::kVpshufb)};
  return setting;
}

// Per calling thread, kept across calls: no allocation or zeroing per call.
template <typename T>
T* scratch(std::vector<T>& buf, int64_t count) {
  if (buf.size() < static_cast<size_t>(count)) buf.resize(count);
  return buf.data();
}

}  // namespace

LutTables lut_tables() { return static_cast<LutTables>(tables_setting().load(std::memory_order_relaxed)); }
void set_lut_tables(LutTables tables) { tables_setting().store(static_cast<int>(tables), std::memory_order_relaxed); }
const char* lut_tables_name(LutTables tables) { return tables == LutTables::kInt8 ? "int8" : "exact"; }

LutLookup lut_lookup() { return static_cast<LutLookup>(lookup_setting().load(std::memory_order_relaxed)); }
void set_lut_lookup(LutLookup lookup) {
  if (lookup == LutLookup::kVpermb && !cpu_has_avx512_vbmi_vnni())
    throw std::invalid_argument("lookup: 'vpermb' needs AVX-512 VBMI and VNNI, which this CPU lacks");
  lookup_setting().store(static_cast<int>(lookup), std::memory_order_relaxed);
}
const char* lut_lookup_name(LutLookup lookup) { return lookup == LutLookup::kVpermb ? "vpermb" : "vpshufb"; }

void lut_gemm(const float* x, int64_t M, const BcqWeight& w, Isa isa, LutTables tables, float* y) {
  const bool simd = isa != Isa::kPortable;
  const bool int8 = simd && tables == LutTables::kInt8;
  const bool vpermb = lut_lookup() == LutLookup::kVpermb;
  const int64_t rows = std::min(kLutRowsPerBlock, M), ng = w.ngroups();
  // Bytes (int8) or floats per activation row.
  const int64_t table_stride = int8 ? lut_int8_table_bytes(w.Kp)
                                    : simd ? (w.Kp / 4) * kLut16Entries : w.row_bytes() * kLutEntries;
  const int64_t scale_stride = w.Kp / lut_int8_block(w.group_size);
  thread_local std::vector<float> float_buf, sum_buf, scale_buf;
  thread_local std::vector<int8_t> int8_buf;
  // Pointers, not the thread_local names: inside the parallel regions those would name each
  // worker's own (empty) buffers.
  float* const ftab = int8 ? nullptr : scratch(float_buf, rows * table_stride);
  int8_t* const itab = int8 ? scratch(int8_buf, rows * table_stride) : nullptr;
  float* const tscale = int8 ? scratch(scale_buf, rows * scale_stride) : nullptr;
  float* const gsum = scratch(sum_buf, rows * ng);
  const int64_t panel_bytes = w.bits * w.row_bytes() * kPanelRows;
  const int64_t panel_grain = std::max<int64_t>(4, kPlaneBytesPerTask / std::max<int64_t>(panel_bytes, 1));
  const int64_t row_grain = std::max<int64_t>(64, panel_grain * kPanelRows);
  // Table building is ~Kp * 16 operations a row: threads over rows only when K is large.
  const int64_t table_grain = w.Kp >= 4096 ? 1 : kLutRowsPerBlock;
  for (int64_t m0 = 0; m0 < M; m0 += kLutRowsPerBlock) {
    const int64_t mb = std::min(kLutRowsPerBlock, M - m0);
    at::parallel_for(0, mb, table_grain, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const float* xr = x + (m0 + i) * w.K;
        if (int8)
          lut_build_tables_int8(xr, w.K, w.Kp, w.group_size, itab + i * table_stride, tscale + i * scale_stride, gsum + i * ng);
        else if (simd)
          lut16_build_tables(xr, w.K, w.Kp, w.group_size, ftab + i * table_stride, gsum + i * ng);
        else
          lut_build_tables(xr, w.K, w.Kp, w.group_size, ftab + i * table_stride, gsum + i * ng);
      }
    });
    float* yb = y + m0 * w.N;
    if (simd) {
      at::parallel_for(0, w.panels(), panel_grain, [&](int64_t p0, int64_t p1) {
        if (int8 && isa >= Isa::kAvx512 && vpermb)
          lut_gemm_panels_int8_avx512vnni(itab, tscale, gsum, mb, w, p0, p1, yb);
        else if (int8 && isa >= Isa::kAvx512)
          lut_gemm_panels_int8_avx512(itab, tscale, gsum, mb, w, p0, p1, yb);
        else if (int8)
          lut_gemm_panels_int8_avx2(itab, tscale, gsum, mb, w, p0, p1, yb);
        else if (isa >= Isa::kAvx512)
          lut_gemm_panels_avx512(ftab, gsum, mb, w, p0, p1, yb);
        else
          lut_gemm_panels_avx2(ftab, gsum, mb, w, p0, p1, yb);
      });
    } else {
      at::parallel_for(0, w.N, row_grain, [&](int64_t n0, int64_t n1) {
        lut_gemm_rows(ftab, gsum, mb, w, n0, n1, yb);
      });
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit
