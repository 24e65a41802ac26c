// Calls fn(std::integral_constant<int, B>{}) for the runtime bit width B in 1..8 (callers
// validate it), so kernels can keep one accumulator per bit-plane in registers (an array
// indexed by a compile-time count). Host code of the CPU kernels and the CUDA launchers.
#pragma once
#include <cstdint>
#include <type_traits>

namespace torch_lowbit {

template <typename Fn>
decltype(auto) with_bits(int64_t bits, Fn&& fn) {
  switch (bits) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    case 4: return fn(std::integral_constant<int, 4>{});
    case 5: return fn(std::integral_constant<int, 5>{});
    case 6: return fn(std::integral_constant<int, 6>{});
    case 7: return fn(std::integral_constant<int, 7>{});
    default: return fn(std::integral_constant<int, 8>{});
  }
}

}  // namespace torch_lowbit
