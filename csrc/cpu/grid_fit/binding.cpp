// torch_lowbit::zero_point_fit and gptq_block on CPU tensors (schemas: torch_lowbit/library.py).
#include <torch/library.h>

#include <tuple>

#include "common/checks.h"
#include "cpu/grid_fit/gptq_block.h"
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

std::tuple<at::Tensor, at::Tensor> gptq_block_cpu(const at::Tensor& w, const at::Tensor& hinv, const at::Tensor& levels,
                                                  const at::Tensor& group_of) {
  TORCH_CHECK(w.dim() == 2 && w.size(1) > 0, "w: expected [N, B] with B > 0, got ", w.sizes());
  const int64_t N = w.size(0), B = w.size(1);
  TORCH_CHECK(hinv.dim() == 2 && hinv.size(0) == B && hinv.size(1) == B, "hinv: expected [", B, ", ", B, "], got ",
              hinv.sizes());
  TORCH_CHECK(levels.dim() == 3 && levels.size(0) == N && levels.size(1) > 0 && levels.size(2) > 0,
              "levels: expected [", N, ", groups, levels], got ", levels.sizes());
  TORCH_CHECK(group_of.dim() == 1 && group_of.size(0) == B && group_of.scalar_type() == at::kLong,
              "group_of: expected int64 [", B, "], got ", group_of.scalar_type(), " ", group_of.sizes());
  const auto g = group_of.contiguous();
  if (B > 0) {
    const int64_t lo = g.min().item<int64_t>(), hi = g.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < levels.size(1), "group_of: entries must lie in [0, ", levels.size(1), "), got ", lo,
                " .. ", hi);
  }
  const auto x = f32(w), h = f32(hinv), lv = f32(levels);
  auto codes = at::empty({N, B}, x.options().dtype(at::kLong));
  auto err = new_output({N, B}, x.options());
  cpu::gptq_block(x.data_ptr<float>(), h.data_ptr<float>(), lv.data_ptr<float>(), g.data_ptr<int64_t>(), N, B,
                  lv.size(1), lv.size(2), codes.data_ptr<int64_t>(), err.data_ptr<float>());
  return {codes, err};
}

}  // namespace

TORCH_LIBRARY_IMPL(torch_lowbit, CPU, m) {
  m.impl("zero_point_fit", &zero_point_fit_cpu);
  m.impl("gptq_block", &gptq_block_cpu);
}

}  // namespace torch_lowbit
