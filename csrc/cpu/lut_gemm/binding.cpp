// torch_lowbit::lut_gemm on CPU tensors (schema: torch_lowbit/library.py). The kernels compute
// in fp32; the result comes back in x's dtype.
#include <torch/library.h>

#include "common/checks.h"
#include "cpu/bindings.h"
#include "cpu/lut_gemm/lut_gemm.h"

namespace torch_lowbit {
namespace cpu {

at::Tensor lut_gemm_f32(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                        const at::Tensor& offset, int64_t K, int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const auto xf = f32(x);
  const int64_t M = x.size(0);
  auto y = new_output({M, alpha.size(2)}, x.options().dtype(at::kFloat));
  if (M > 0) lut_gemm(xf.data_ptr<float>(), M, bcq_view(p, a, o, K, G), active_isa(), lut_tables(), y.data_ptr<float>());
  return y;
}

namespace {

at::Tensor lut_gemm_cpu(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                        const at::Tensor& offset, int64_t K, int64_t G) {
  return lut_gemm_f32(x, planes, alpha, offset, K, G).to(x.scalar_type());
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) { m.impl("lut_gemm", &cpu::lut_gemm_cpu); }

}  // namespace torch_lowbit
