// torch_lowbit::bcq_dequantize on CPU tensors (schema: torch_lowbit/library.py).
#include <torch/library.h>

#include "common/checks.h"
#include "cpu/bcq_dequantize/bcq_dequantize.h"
#include "cpu/huge_page_output.h"

namespace torch_lowbit {
namespace {

at::Tensor bcq_dequantize_cpu(const at::Tensor& planes, const at::Tensor& alpha,
                              const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  auto out = cpu::new_huge_page_output({w.N, K}, at::kFloat);
  cpu::bcq_dequantize(w, cpu::active_isa(), out.data_ptr<float>());
  if (alpha.scalar_type() == at::kFloat) return out;
  auto cast = cpu::new_huge_page_output({w.N, K}, alpha.scalar_type());
  return cast.copy_(out);
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) { m.impl("bcq_dequantize", &bcq_dequantize_cpu); }

}  // namespace torch_lowbit
