// The int8-activation GEMM's driver (int8_gemm.h): threads over strips of weight rows, each
// thread expanding its strip's codes into its own scratch.
#include "cpu/int8_gemm/int8_gemm.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "cpu/isa/cpu_features.h"

namespace torch_lowbit {
namespace cpu {
namespace {

std::atomic<bool>& enabled() {
  static std::atomic<bool> on{true};
  return on;
}

}  // namespace

bool int8_gemm_enabled() { return enabled().load(std::memory_order_relaxed); }
void set_int8_gemm_enabled(bool on) { enabled().store(on, std::memory_order_relaxed); }

bool int8_gemm_on_vnni(Isa isa) { return isa >= Isa::kAvx512 && cpu_has_avx512_vnni(); }

bool int8_gemm_runs(int64_t bits, Isa isa) {
  if (isa < Isa::kAvx2) return false;
  return int8_gemm_on_vnni(isa) || bits <= 7;
}

void quantize_activations_int8(const float* x, int64_t M, int64_t K, int64_t Kp, int64_t G,
                               int8_t* q, float* scale, float* group_sum) {
  at::parallel_for(0, M, 16, [&](int64_t m0, int64_t m1) {
    quantize_activations_int8_avx2(x + m0 * K, m1 - m0, K, Kp, G, q + m0 * Kp, scale + m0 * (Kp / kInt8Block),
                                   group_sum + m0 * (Kp / G));
  });
}

bool bcq_weight_uniform(const BcqWeight& w, Isa isa) { return isa >= Isa::kAvx2 && bcq_weight_uniform_avx2(w); }

void int8_gemm_bcq(const Int8Activations& a, const BcqWeight& w, Isa isa, float* y) {
  const bool vnni = int8_gemm_on_vnni(isa);
  const int64_t cols = vnni ? kInt8StripColsAvx512 : kInt8StripColsAvx2;
  const int64_t strips = (w.N + cols - 1) / cols;
  const int64_t bytes = int8_strip_scratch_bytes(w, cols);
  at::parallel_for(0, strips, 1, [&](int64_t s0, int64_t s1) {
    std::vector<uint8_t> scratch(bytes);
    for (int64_t s = s0; s < s1; ++s) {
      if (vnni)
        int8_gemm_strip_avx512vnni(a, w, s * cols, y, scratch.data());
      else
        int8_gemm_strip_avx2(a, w, s * cols, y, scratch.data());
    }
  });
}

}  // namespace cpu
}  // namespace torch_lowbit
