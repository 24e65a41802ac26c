// The int8-activation GEMM on ATen tensors (no op of its own: bcq_linear's selector runs it for
// many rows of a uniform-grid weight, cpu/kernel_selector.h).
#include "common/checks.h"
#include "cpu/bindings.h"
#include "cpu/int8_gemm/int8_gemm.h"

namespace torch_lowbit {
namespace cpu {

bool bcq_weight_uniform(const at::Tensor& planes, const at::Tensor& alpha, const at::Tensor& offset,
                        int64_t K, int64_t G) {
  const auto p = planes.contiguous(), a = alpha.contiguous(), o = offset.contiguous();
  return bcq_weight_uniform(bcq_view(p, a, o, K, G), active_isa());
}

at::Tensor int8_gemm_bcq_f32(const at::Tensor& x, const at::Tensor& planes, const at::Tensor& alpha,
                             const at::Tensor& offset, int64_t K, int64_t G) {
  const auto p = planes.contiguous(), a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  const auto xf = f32(x);
  const int64_t M = x.size(0);
  auto q = at::empty({M, w.Kp}, x.options().dtype(at::kChar));
  auto scale = at::empty({M, w.Kp / kInt8Block}, x.options().dtype(at::kFloat));
  auto group_sum = at::empty({M, w.ngroups()}, x.options().dtype(at::kFloat));
  quantize_activations_int8(xf.data_ptr<float>(), M, K, w.Kp, w.group_size, q.data_ptr<int8_t>(), scale.data_ptr<float>(),
                            group_sum.data_ptr<float>());
  auto y = new_output({M, w.N}, x.options().dtype(at::kFloat));
  const Int8Activations acts{q.data_ptr<int8_t>(), scale.data_ptr<float>(), group_sum.data_ptr<float>(), M, w.Kp, w.ngroups()};
  if (M > 0) int8_gemm_bcq(acts, w, active_isa(), y.data_ptr<float>());
  return y;
}

}  // namespace cpu
}  // namespace torch_lowbit
