// The CPU's SIMD features by cpuid, as a readable list for `python -m torch_lowbit env`.
#pragma once

namespace torch_lowbit {
namespace cpu {

const char* cpu_features();

}  // namespace cpu
}  // namespace torch_lowbit
