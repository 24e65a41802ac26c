// im2win convolution on CUDA (arXiv 2306.14316): the window buffer is built on the GPU inside
// the op, then each thread computes one output (pixel, channel) as a sum over the S runs of
// R * Cg contiguous window values. Padding lives in the window buffer; tails are guarded.
#include "bcq_device.cuh"
#include "launchers.h"

namespace torch_lowbit {
namespace cuda {
namespace {

__global__ void im2win_transform_kernel(const float* __restrict__ x, ConvShape s,
                                        float* __restrict__ win) {
  const int64_t Cg = s.Cg(), Wwin = s.Wwin();
  const int64_t total = s.window_floats();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t rest = i;
    const int64_t c = rest % Cg; rest /= Cg;
    const int64_t r = rest % s.R; rest /= s.R;
    const int64_t col = rest % Wwin; rest /= Wwin;
    const int64_t oh = rest % s.OH; rest /= s.OH;
    const int64_t g = rest % s.groups;
    const int64_t n = rest / s.groups;
    const int64_t ih = oh * s.sh - s.pt + r * s.dh, iw = col - s.pl;
    win[i] = (ih >= 0 && ih < s.H && iw >= 0 && iw < s.W)
                 ? x[((n * s.H + ih) * s.W + iw) * s.C + g * Cg + c]
                 : 0.f;
  }
}

struct DenseFilter {
  const float* w;  // [O][Cg][R][S]
  int64_t K;       // Cg * R * S
  __device__ float operator()(int64_t o, int64_t k) const { return w[o * K + k]; }
};

struct BcqFilter {
  BcqWeight w;
  __device__ float operator()(int64_t o, int64_t k) const { return bcq_weight_at(w, o, k); }
};

template <typename Filter>
__global__ void im2win_conv_kernel(const float* __restrict__ win, Filter filter,
                                   const float* __restrict__ bias, ConvShape s,
                                   float* __restrict__ out) {
  const int64_t total = s.N * s.OH * s.OW * s.O;
  const int64_t Cg = s.Cg(), Og = s.Og(), Wwin = s.Wwin();
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t rest = i;
    const int64_t o = rest % s.O; rest /= s.O;
    const int64_t ow = rest % s.OW; rest /= s.OW;
    const int64_t oh = rest % s.OH;
    const int64_t n = rest / s.OH;
    const int64_t g = o / Og;
    const float* row = win + (((n * s.groups + g) * s.OH + oh) * Wwin) * s.R * Cg;
    float acc = bias ? bias[o] : 0.f;
    for (int64_t q = 0; q < s.S; ++q) {
      const float* run = row + (ow * s.sw + q * s.dw) * s.R * Cg;
      for (int64_t r = 0; r < s.R; ++r)
        for (int64_t c = 0; c < Cg; ++c)
          acc += run[r * Cg + c] * filter(o, (c * s.R + r) * s.S + q);
    }
    out[i] = acc;
  }
}

unsigned int grid_for(int64_t total) {
  const int64_t blocks = (total + 255) / 256;
  return static_cast<unsigned int>(blocks < 65535 * 8 ? blocks : 65535 * 8);
}

template <typename Filter>
cudaError_t launch_conv(const float* win, Filter filter, const float* bias, const ConvShape& s,
                        float* out, cudaStream_t stream) {
  const int64_t total = s.N * s.OH * s.OW * s.O;
  if (total == 0) return cudaSuccess;
  im2win_conv_kernel<<<grid_for(total), 256, 0, stream>>>(win, filter, bias, s, out);
  return cudaGetLastError();
}

}  // namespace

cudaError_t im2win_transform(const float* x_nhwc, const ConvShape& s, float* win,
                             cudaStream_t stream) {
  const int64_t total = s.window_floats();
  if (total == 0) return cudaSuccess;
  im2win_transform_kernel<<<grid_for(total), 256, 0, stream>>>(x_nhwc, s, win);
  return cudaGetLastError();
}

cudaError_t im2win_conv_dense(const float* win, const float* w, const float* bias,
                              const ConvShape& s, float* out, cudaStream_t stream) {
  return launch_conv(win, DenseFilter{w, s.Cg() * s.R * s.S}, bias, s, out, stream);
}

cudaError_t im2win_conv_bcq(const float* win, const BcqWeight& w, const float* bias,
                            const ConvShape& s, float* out, cudaStream_t stream) {
  return launch_conv(win, BcqFilter{w}, bias, s, out, stream);
}

}  // namespace cuda
}  // namespace torch_lowbit
