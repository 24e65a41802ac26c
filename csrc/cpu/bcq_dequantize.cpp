#include "kernels.h"

namespace torch_lowbit {
namespace cpu {

void bcq_dequantize_block(const BcqWeight& w, int64_t n0, int64_t n1, int64_t k0, int64_t k1,
                          float* out, int64_t ld) {
  for (int64_t n = n0; n < n1; ++n) {
    float* o = out + (n - n0) * ld;
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t g = k / w.group_size;
      float v = w.offset_at(g, n);
      for (int64_t b = 0; b < w.bits; ++b) {
        const uint8_t byte = w.byte_at(b, n, k >> 3);
        const float a = w.alpha_at(b, g, n);
        v += ((byte >> (k & 7)) & 1) ? a : -a;
      }
      o[k - k0] = v;
    }
  }
}

}  // namespace cpu
}  // namespace torch_lowbit
