// Which SIMD code path the CPU kernels take. Detected once with cpuid at load (a build on one
// machine never runs AVX-512 code on a CPU without it); tests and benchmarks may force a lower
// path with set_isa() (torch_lowbit._C.set_cpu_isa).
#pragma once

namespace torch_lowbit {
namespace cpu {

// kAmx is AVX-512 plus AMX-BF16 tiles (with the OS permission to use them): the tiled GEMM
// runs bf16 activations on the tile unit; everything else takes the AVX-512 paths.
enum class Isa : int { kPortable = 0, kAvx2 = 1, kAvx512 = 2, kAmx = 3 };

Isa best_isa();            // what this CPU supports
Isa active_isa();          // what the kernels use now
void set_isa(Isa isa);     // throws std::invalid_argument if the CPU lacks it
const char* isa_name(Isa isa);

}  // namespace cpu
}  // namespace torch_lowbit
