// im2win convolution on CUDA (arXiv 2306.14316). The window buffer is built on the GPU inside
// the op: win[n][g][oh][col][r][c] = x_pad[n, g*Cg + c, oh*sh + r*dh, col], so output pixel
// (n, oh, ow) reads S runs of R*Cg contiguous values starting at column ow*sw + q*dw. Then the
// paper's implicit GEMM per group: rows = output pixels, columns = the group's output
// channels, reduction = (q, r, c); the SIMT kernel of simt_gemm.cuh (128 x 128 x 8 block tiles,
// 8 x 8 micro-tiles, double-buffered shared memory and registers, the next tile prefetched),
// with the padding in the window buffer and every tail guarded. Low-bit filters are expanded
// per tile as they are loaded. The group is blockIdx.z.
#include "cuda/common/launchers.h"
#include "cuda/common/simt_gemm.cuh"

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

// A operand: row p = output pixel, k = q * R*Cg + (r*Cg + c) walks the pixel's S window runs.
struct WindowRows {
  const float* win;
  ConvShape s;
  __device__ float4 load4(int64_t p, int64_t k) const {
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    const int64_t run = s.R * s.Cg(), P = s.N * s.OH * s.OW;
    if (p < P) {
      const int64_t ow = p % s.OW, oh = (p / s.OW) % s.OH, n = p / (s.OW * s.OH);
      const float* row = win + (((n * s.groups + blockIdx.z) * s.OH + oh) * s.Wwin()) * run;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t kj = k + j;
        if (kj < s.S * run) v[j] = row[(ow * s.sw + (kj / run) * s.dw) * run + kj % run];
      }
    }
    return make_float4(v[0], v[1], v[2], v[3]);
  }
};

// B operand: row o = the group's output channel, same k order; the filter is stored [O][Cg][R][S].
template <typename Filter>
struct FilterRows {
  Filter filter;
  ConvShape s;
  __device__ float4 load4(int64_t o, int64_t k) const {
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    const int64_t Cg = s.Cg(), run = s.R * Cg;
    if (o < s.Og()) {
      const int64_t og = blockIdx.z * s.Og() + o;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int64_t kj = k + j;
        if (kj >= s.S * run) break;
        const int64_t q = kj / run, rc = kj % run;
        v[j] = filter(og, ((rc % Cg) * s.R + rc / Cg) * s.S + q);
      }
    }
    return make_float4(v[0], v[1], v[2], v[3]);
  }
};

struct DenseFilter {
  const float* w;  // [O][Cg * R * S]
  int64_t K;
  __device__ float operator()(int64_t o, int64_t k) const { return w[o * K + k]; }
};

struct BcqFilter {
  BcqWeight w;
  __device__ float operator()(int64_t o, int64_t k) const { return bcq_weight_at(w, o, k); }
};

struct ConvStore {
  float* out;  // NHWC [P][O]
  const float* bias;
  int64_t O, Og;
  __device__ void operator()(int64_t p, int64_t o, float v) const {
    const int64_t oc = blockIdx.z * Og + o;
    out[p * O + oc] = v + (bias ? bias[oc] : 0.f);
  }
};

template <typename Filter>
cudaError_t launch_conv(const float* win, Filter filter, const float* bias, const ConvShape& s,
                        float* out, cudaStream_t stream) {
  const int64_t P = s.N * s.OH * s.OW;
  return launch_simt_gemm(WindowRows{win, s}, FilterRows<Filter>{filter, s}, ConvStore{out, bias, s.O, s.Og()},
                          P, s.Og(), s.S * s.R * s.Cg(), static_cast<unsigned int>(s.groups), stream);
}

}  // namespace

cudaError_t im2win_transform(const float* x_nhwc, const ConvShape& s, float* win,
                             cudaStream_t stream) {
  const int64_t total = s.window_floats();
  if (total == 0) return cudaSuccess;
  const int64_t blocks = (total + 255) / 256;
  im2win_transform_kernel<<<static_cast<unsigned int>(blocks < 65535 * 8 ? blocks : 65535 * 8), 256, 0, stream>>>(x_nhwc, s, win);
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
