// The one schema list of torch_lowbit. Kernels register per device in cpu/cpu_ops.cpp and
// cuda/cuda_ops.cpp; fake (meta) kernels and autograd are registered from Python
// (torch_lowbit/_registrations.py); the plain-PyTorch definition of every op is
// torch_lowbit/reference.py.
#include <torch/library.h>

TORCH_LIBRARY(torch_lowbit, m) {
  // BCQ weight (docs/FORMAT.md): planes uint8 [bits, N, Kp/8], alpha [bits, Kp/G, N],
  // offset [Kp/G, N]; in_features = K (unpadded), group_size = G (effective, divides Kp).
  m.def("bcq_dequantize(Tensor planes, Tensor alpha, Tensor offset, int in_features, "
        "int group_size) -> Tensor");
  // y[M, N] = x[M, K] @ W^T through tables of signed activation sums.
  m.def("lut_gemm(Tensor x, Tensor planes, Tensor alpha, Tensor offset, int in_features, "
        "int group_size) -> Tensor");
  // y[M, N] = x[M, K] @ weight[N, K]^T, dense weight.
  m.def("tiled_gemm(Tensor x, Tensor weight) -> Tensor");
  // y[M, N] = x[M, K] @ W^T, BCQ weight expanded tile by tile.
  m.def("tiled_gemm_bcq(Tensor x, Tensor planes, Tensor alpha, Tensor offset, int in_features, "
        "int group_size) -> Tensor");
  // F.conv2d(x, weight, bias, stride, 0, dilation, groups) on x zero-padded by
  // padding = [top, bottom, left, right]; x NCHW or channels_last, output in x's format.
  m.def("im2win_conv2d(Tensor x, Tensor weight, Tensor? bias, int[2] stride, int[4] padding, "
        "int[2] dilation, int groups) -> Tensor");
  // The same with a BCQ weight of the flattened filters [O, C/groups * R * S];
  // weight_shape = [O, C/groups, R, S].
  m.def("im2win_conv2d_bcq(Tensor x, Tensor planes, Tensor alpha, Tensor offset, "
        "int[4] weight_shape, int group_size, Tensor? bias, int[2] stride, int[4] padding, "
        "int[2] dilation, int groups) -> Tensor");
}
