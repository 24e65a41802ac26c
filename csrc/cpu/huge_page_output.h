// Large CPU outputs on transparent huge pages. A fresh tensor of a whole dequantized weight
// (180 MB for 11008x4096 fp32) is first touched by its kernel, and with 4 KiB pages those first
// touches cost more than the kernel: AMD EPYC Zen 5, 2 threads, bcq_dequantize 3-bit 11008x4096
// took ~70 ms, ~55 ms of it page faults (torch.empty(...).fill_ 61 ms vs 6 ms into touched
// memory). Asking for 2 MiB pages (madvise MADV_HUGEPAGE, what PyTorch's own
// THP_MEM_ALLOC_ENABLE does for every allocation) takes 512x fewer faults. Where THP is off the
// advice is ignored and the output is an ordinary allocation.
#pragma once
#include <ATen/ATen.h>
#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include "common/checks.h"

namespace torch_lowbit {
namespace cpu {

constexpr size_t kHugePage = size_t{2} << 20;
// Below this an output is a plain at::empty: the faults it saves are too few to matter.
constexpr size_t kHugePageMinBytes = size_t{8} << 20;

inline at::Tensor new_huge_page_output(at::IntArrayRef sizes, at::ScalarType dtype) {
  const auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
  size_t nbytes = at::elementSize(dtype);
  for (const int64_t s : sizes) nbytes *= static_cast<size_t>(s);
  if (nbytes < kHugePageMinBytes) return new_output(sizes, options);
  const size_t rounded = (nbytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = std::aligned_alloc(kHugePage, rounded);
  if (p == nullptr) throw std::bad_alloc();
  madvise(p, rounded, MADV_HUGEPAGE);  // advice only: failure leaves normal pages
  auto t = at::from_blob(p, sizes, [](void* q) { std::free(q); }, options);
  if (poison_outputs()) t.fill_(NAN);
  return t;
}

}  // namespace cpu
}  // namespace torch_lowbit
