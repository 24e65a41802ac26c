// torch_lowbit::zero_point_fit on CPU tensors (schema: torch_lowbit/library.py).
#include <torch/library.h>

#include <tuple>

#include "common/checks.h"
#include "cpu/grid_fit/zero_point_fit.h"

namespace torch_lowbit {
namespace {

std::tuple<at::Tensor, at::Tensor> zero_point_fit_cpu(const at::Tensor& w, int64_t bits, int64_t points,
                                                      int64_t refits) {
  TORCH_CHECK(w.dim() == 2 && w.size(1) > 0, "w: expected [groups, group_size] with group_size > 0, got ", w.sizes());
  TORCH_CHECK(bits >= 1 && bits <= 8, "bits: expected 1..8, got ", bits);
  TORCH_CHECK(points >= 1 && points <= 1000, "points: expected 1..1000, got ", points);
  TORCH_CHECK(refits >= 0 && refits <= 100, "refits: expected 0..100, got ", refits);
  const auto x = f32(w);
  auto scale = new_output({w.size(0)}, x.options());
  auto zp = new_output({w.size(0)}, x.options());
  cpu::zero_point_fit(x.data_ptr<float>(), x.size(0), x.size(1), static_cast<int>(bits),
                      static_cast<int>(points), static_cast<int>(refits), scale.data_ptr<float>(),
                      zp.data_ptr<float>());
  return {scale, zp};
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) { m.impl("zero_point_fit", &zero_point_fit_cpu); }

}  // namespace torch_lowbit
