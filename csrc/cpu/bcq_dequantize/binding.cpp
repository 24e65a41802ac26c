// torch_lowbit::bcq_dequantize on CPU tensors (schema: torch_lowbit/library.py).
#include <torch/library.h>

#include "common/checks.h"
#include "cpu/bcq_dequantize/bcq_dequantize.h"

namespace torch_lowbit {
namespace {

at::Tensor bcq_dequantize_cpu(const at::Tensor& planes, const at::Tensor& alpha,
                              const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  auto out = new_output({w.N, K}, alpha.options().dtype(at::kFloat));
  cpu::bcq_dequantize(w, cpu::active_isa(), out.data_ptr<float>());
  return out.to(alpha.scalar_type());
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) { m.impl("bcq_dequantize", &bcq_dequantize_cpu); }

}  // namespace torch_lowbit
