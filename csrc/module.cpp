// The Python module torch_lowbit._C: loading it registers the CPU and CUDA implementations of
// the ops (the TORCH_LIBRARY_IMPL blocks in cpu/<op>/binding.cpp and cuda/<op>/binding.cpp; the
// schemas live in torch_lowbit/library.py); build_info() feeds `python -m torch_lowbit env`.
#include <torch/extension.h>

#include <stdexcept>
#include <string>

#include "cpu/isa/cpu_features.h"
#include "cpu/isa/isa.h"
#include "cpu/kernel_selector.h"
#include "cpu/lut_gemm/lut_gemm.h"

#ifndef TORCH_LOWBIT_CUDA_ARCHS
#define TORCH_LOWBIT_CUDA_ARCHS ""
#endif

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("build_info", [] {
    pybind11::dict info;
#ifdef TORCH_LOWBIT_WITH_CUDA
    info["cuda"] = true;
#else
    info["cuda"] = false;
#endif
    info["cuda_archs"] = TORCH_LOWBIT_CUDA_ARCHS;
    info["cpu_features"] = torch_lowbit::cpu::cpu_features();
    info["cpu_isa_best"] = torch_lowbit::cpu::isa_name(torch_lowbit::cpu::best_isa());
    info["cpu_isa"] = torch_lowbit::cpu::isa_name(torch_lowbit::cpu::active_isa());
    info["cpu_lut_tables"] = torch_lowbit::cpu::lut_tables_name(torch_lowbit::cpu::lut_tables());
    info["cpu_lut_lookup"] = torch_lowbit::cpu::lut_lookup_name(torch_lowbit::cpu::lut_lookup());
    return info;
  });
  // Which CPU kernel bcq_linear runs for this call shape now (tests and benchmarks): "lut",
  // "dense", "tiled_amx" or "int8_gemm" (`uniform`: the weight's grids are uniform).
  m.def("cpu_linear_kernel", [](int64_t rows, int64_t bits, int64_t N, int64_t K, bool bf16, bool uniform) {
    using namespace torch_lowbit::cpu;
    return std::string(bcq_linear_kernel_name(
        select_bcq_linear(rows, bits, N * K, active_isa(), bf16, lut_tables(), lut_lookup(), [&] { return uniform; })));
  });
  // The int8-activation GEMM on or off for the process (on by default; "exact" tables also keep
  // it off).
  m.def("cpu_int8_gemm", [] { return torch_lowbit::cpu::int8_gemm_enabled(); });
  m.def("set_cpu_int8_gemm", [](bool on) { torch_lowbit::cpu::set_int8_gemm_enabled(on); });
  // The active CPU path alone (cheap: the ops' dispatch policy asks per call).
  m.def("cpu_isa", [] { return std::string(torch_lowbit::cpu::isa_name(torch_lowbit::cpu::active_isa())); });
  // LUT-GEMM tables of the SIMD paths: "int8" (default) or "exact" (fp32).
  m.def("cpu_lut_tables", [] { return std::string(torch_lowbit::cpu::lut_tables_name(torch_lowbit::cpu::lut_tables())); });
  m.def("set_cpu_lut_tables", [](const std::string& name) {
    using torch_lowbit::cpu::LutTables;
    if (name == "int8") torch_lowbit::cpu::set_lut_tables(LutTables::kInt8);
    else if (name == "exact") torch_lowbit::cpu::set_lut_tables(LutTables::kExact);
    else throw pybind11::value_error("tables: expected 'int8' or 'exact', got '" + name + "'");
  });
  // The AVX-512 int8 LUT kernel: "vpermb" (VBMI + VNNI, default where present) or "vpshufb".
  m.def("cpu_lut_lookup", [] { return std::string(torch_lowbit::cpu::lut_lookup_name(torch_lowbit::cpu::lut_lookup())); });
  m.def("set_cpu_lut_lookup", [](const std::string& name) {
    using torch_lowbit::cpu::LutLookup;
    LutLookup lookup;
    if (name == "vpermb") lookup = LutLookup::kVpermb;
    else if (name == "vpshufb") lookup = LutLookup::kVpshufb;
    else throw pybind11::value_error("lookup: expected 'vpermb' or 'vpshufb', got '" + name + "'");
    try {
      torch_lowbit::cpu::set_lut_lookup(lookup);
    } catch (const std::invalid_argument& e) {
      throw pybind11::value_error(e.what());
    }
  });
  // Force a SIMD path ("portable", "avx2", "avx512", "amx"); ValueError if this CPU lacks it.
  m.def("set_cpu_isa", [](const std::string& name) {
    using torch_lowbit::cpu::Isa;
    Isa isa;
    if (name == "portable") isa = Isa::kPortable;
    else if (name == "avx2") isa = Isa::kAvx2;
    else if (name == "avx512") isa = Isa::kAvx512;
    else if (name == "amx") isa = Isa::kAmx;
    else throw pybind11::value_error("isa: expected 'portable', 'avx2', 'avx512' or 'amx', got '" + name + "'");
    try {
      torch_lowbit::cpu::set_isa(isa);
    } catch (const std::invalid_argument& e) {
      throw pybind11::value_error(e.what());
    }
  });
}
