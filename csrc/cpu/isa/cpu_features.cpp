#include <string>

#include "cpu/isa/cpu_features.h"

namespace torch_lowbit {
namespace cpu {

const char* cpu_features() {
  static const std::string features = [] {
    std::string f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const struct { const char* name; bool on; } list[] = {
        {"sse4.2", (bool)__builtin_cpu_supports("sse4.2")},
        {"avx", (bool)__builtin_cpu_supports("avx")},
        {"avx2", (bool)__builtin_cpu_supports("avx2")},
        {"fma", (bool)__builtin_cpu_supports("fma")},
        {"avx512f", (bool)__builtin_cpu_supports("avx512f")},
        {"avx512bw", (bool)__builtin_cpu_supports("avx512bw")},
        {"avx512vl", (bool)__builtin_cpu_supports("avx512vl")},
        {"avx512vbmi", (bool)__builtin_cpu_supports("avx512vbmi")},
        {"avx512vnni", (bool)__builtin_cpu_supports("avx512vnni")},
        {"avx512bf16", (bool)__builtin_cpu_supports("avx512bf16")},
    };
    for (const auto& e : list)
      if (e.on) f += (f.empty() ? "" : " ") + std::string(e.name);
#elif defined(__aarch64__)
    f = "aarch64 neon";
#endif
    return f.empty() ? std::string("(none detected)") : f;
  }();
  return features.c_str();
}

bool cpu_has_avx512_vbmi_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

}  // namespace cpu
}  // namespace torch_lowbit
