// torch_lowbit::tiled_gemm (dense weight) and tiled_gemm_bcq (low-bit weight) on CPU tensors
// (schemas: torch_lowbit/library.py). fp32 kernels, or AMX for bf16 where the selector says so;
// the result comes back in x's dtype.
#include <torch/library.h>

#include "common/checks.h"
#include "cpu/bindings.h"
#include "cpu/kernel_selector.h"
#include "cpu/tiled_gemm/tiled_gemm.h"

namespace torch_lowbit {
namespace cpu {
namespace {

at::Tensor tiled_gemm_cpu(const at::Tensor& x, const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2 && weight.is_floating_point(),
              "weight: expected a 2-D floating point [N, K] tensor, got ", weight.sizes());
  check_activation(x, weight.size(1), weight);
  const auto xf = f32(x), wf = f32(weight);
  const int64_t M = x.size(0), K = x.size(1), N = weight.size(0);
  auto y = new_output({M, N}, x.options().dtype(at::kFloat));
  tiled_gemm_dense(xf.data_ptr<float>(), M, K, wf.data_ptr<float>(), N, active_isa(), y.data_ptr<float>());
  return y.to(x.scalar_type());
}

// x padded with zeros to [multiple of 32 rows][Kp] bf16: reads x as bf16, no fp32 copy.
at::Tensor tiled_gemm_bcq_amx_cpu(const at::Tensor& x, const BcqWeight& w) {
  const int64_t M = x.size(0), Mp = (M + 31) / 32 * 32;
  auto xp = at::zeros({Mp, w.Kp}, x.options());
  xp.narrow(0, 0, M).narrow(1, 0, w.K).copy_(x);
  auto y = new_output({M, w.N}, x.options().dtype(at::kFloat));
  tiled_gemm_bcq_amx(reinterpret_cast<const uint16_t*>(xp.data_ptr<at::BFloat16>()), Mp, M, w,
                     y.data_ptr<float>());
  return y;
}

}  // namespace

at::Tensor tiled_gemm_bcq_f32(const at::Tensor& x, const at::Tensor& planes,
                              const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                              int64_t G) {
  check_bcq(planes, alpha, offset, K, G);
  check_activation(x, K, planes);
  const auto p = planes.contiguous();
  const auto a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  const int64_t M = x.size(0);
  const Isa isa = active_isa();
  if (M > 0 && tiled_on_amx(isa, x.scalar_type() == at::kBFloat16)) return tiled_gemm_bcq_amx_cpu(x, w);
  const auto xf = f32(x);
  auto y = new_output({M, w.N}, x.options().dtype(at::kFloat));
  tiled_gemm_bcq(xf.data_ptr<float>(), M, w, isa, y.data_ptr<float>());
  return y;
}

namespace {

at::Tensor tiled_gemm_bcq_cpu(const at::Tensor& x, const at::Tensor& planes,
                              const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                              int64_t G) {
  return tiled_gemm_bcq_f32(x, planes, alpha, offset, K, G).to(x.scalar_type());
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) {
  m.impl("tiled_gemm", &cpu::tiled_gemm_cpu);
  m.impl("tiled_gemm_bcq", &cpu::tiled_gemm_bcq_cpu);
}

}  // namespace torch_lowbit
