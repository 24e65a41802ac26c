// Convolution geometry shared by the CPU and CUDA im2win kernels (no torch headers).
#pragma once
#include <cstdint>

#include "host_device.h"

namespace torch_lowbit {

struct ConvShape {
  int64_t N, C, H, W;        // input (the kernels read it as NHWC)
  int64_t O, R, S, groups;   // weight [O, C / groups, R, S]
  int64_t sh, sw, pt, pl;    // stride, top/left padding (bottom/right only shape OH, OW)
  int64_t dh, dw;            // dilation
  int64_t OH, OW;
  TORCH_LOWBIT_HD int64_t Cg() const { return C / groups; }
  TORCH_LOWBIT_HD int64_t Og() const { return O / groups; }
  // Columns of the window buffer: every padded input column some output reads.
  TORCH_LOWBIT_HD int64_t Wwin() const { return (OW - 1) * sw + (S - 1) * dw + 1; }
  // Floats of the window buffer for the whole batch: [N][groups][OH][Wwin][R][Cg].
  TORCH_LOWBIT_HD int64_t window_floats() const { return N * groups * OH * Wwin() * R * Cg(); }
};

}  // namespace torch_lowbit
