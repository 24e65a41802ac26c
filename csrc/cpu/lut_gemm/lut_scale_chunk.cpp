#include "cpu/lut_gemm/lut_scale_chunk.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace torch_lowbit {
namespace cpu {
namespace {

uint8_t* scale_chunk_storage(size_t bytes) {
  static thread_local std::vector<uint8_t> storage;
  if (storage.size() < bytes) storage.resize(bytes);
  return storage.data();
}

}  // namespace

int64_t ScaleChunk::panels_per_chunk(const BcqWeight& w) {
  const int64_t per_panel = (w.bits + 1) * w.ngroups() * kPanelRows * (w.half ? 2 : 4);
  return std::clamp<int64_t>(kBudgetBytes / per_panel, 1, 32);
}

ScaleChunk::ScaleChunk(const BcqWeight& w, int64_t panels) : chunk_(w) {
  const int64_t es = w.half ? 2 : 4, rows = panels * kPanelRows, ng = w.ngroups();
  uint8_t* storage = scale_chunk_storage((w.bits + 1) * ng * rows * es);
  chunk_.alpha = storage;
  chunk_.offset = storage + w.bits * ng * rows * es;
  chunk_.N = rows;
}

const BcqWeight& ScaleChunk::gather(const BcqWeight& w, int64_t n0, int64_t n1) {
  const size_t bytes = (n1 - n0) * (w.half ? 2 : 4);
  for (int64_t g = 0; g < w.ngroups(); ++g) {
    for (int64_t b = 0; b < w.bits; ++b)
      std::memcpy(const_cast<void*>(chunk_.alpha_ptr(b, g, 0)), w.alpha_ptr(b, g, n0), bytes);
    std::memcpy(const_cast<void*>(chunk_.offset_ptr(g, 0)), w.offset_ptr(g, n0), bytes);
  }
  return chunk_;
}

}  // namespace cpu
}  // namespace torch_lowbit
