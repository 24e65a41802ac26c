// Many-row low-bit linear: expand a block of weight rows to fp32 into a reused scratch buffer,
// then ATen's dense GEMM (MKL / oneDNN sgemm) on it. Past a few dozen rows the sgemm's time
// dwarfs the expansion (~0.5 ns a weight from L2/L3), and that sgemm runs at about twice the
// rate of our own tiled FMA kernel (all-MiniLM shapes, m = 1536, on AMD EPYC Zen 3: ours
// 0.42-0.46x F.linear fp32, expand + sgemm 0.91-1.08x). The blocks keep the scratch within
// L3-sized bounds whatever the layer (a 32000 x 2048 lm_head would be 262 MB expanded).
#include "common/checks.h"
#include "cpu/bcq_dequantize/bcq_dequantize.h"
#include "cpu/bindings.h"

#include <algorithm>

namespace torch_lowbit {
namespace cpu {
namespace {

constexpr int64_t kScratchBytes = 16 << 20;

// Per calling thread (ops can run on several threads at once), grown on demand and kept: a
// fresh 16 MB allocation each call would page-fault it in again every time.
float* scratch(int64_t floats) {
  static thread_local at::Tensor buffer;
  if (!buffer.defined() || buffer.numel() < floats) buffer = at::empty({floats}, at::kFloat);
  return buffer.data_ptr<float>();
}

}  // namespace

at::Tensor dense_gemm_bcq_f32(const at::Tensor& x, const at::Tensor& planes,
                              const at::Tensor& alpha, const at::Tensor& offset, int64_t K,
                              int64_t G) {
  const auto p = planes.contiguous(), a = alpha.contiguous(), o = offset.contiguous();
  const BcqWeight w = bcq_view(p, a, o, K, G);
  const auto xf = f32(x);
  auto y = new_output({x.size(0), w.N}, x.options().dtype(at::kFloat));
  // Rows per block: whole panels, at least one, the scratch within its budget.
  const int64_t rows = std::clamp<int64_t>(kScratchBytes / (4 * K) / kPanelRows * kPanelRows, kPanelRows, w.N);
  float* buf = scratch(rows * K);
  const Isa isa = active_isa();
  for (int64_t n0 = 0; n0 < w.N; n0 += rows) {
    const int64_t n1 = std::min(w.N, n0 + rows);
    bcq_dequantize_rows(w, isa, n0, n1, buf);
    const auto block = at::from_blob(buf, {n1 - n0, K}, at::kFloat);
    auto out = y.narrow(1, n0, n1 - n0);  // rows of stride N: a GEMM output with ld = N
    at::mm_out(out, xf, block.t());
  }
  return y;
}

}  // namespace cpu
}  // namespace torch_lowbit
