// The CPU's SIMD features by cpuid, as a readable list for `python -m torch_lowbit env`.
#pragma once

namespace torch_lowbit {
namespace cpu {

const char* cpu_features();
// AVX-512 VBMI and VNNI (vpermb, vpdpbusd): the AVX-512 int8 LUT kernel's faster variant.
bool cpu_has_avx512_vbmi_vnni();
// AVX-512 VNNI (vpdpbusd on zmm): the int8-activation GEMM's AVX-512 kernel.
bool cpu_has_avx512_vnni();

}  // namespace cpu
}  // namespace torch_lowbit
