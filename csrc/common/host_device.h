// TORCH_LOWBIT_HD marks the small inline helpers that both the host compiler and nvcc compile
// (format views, conv geometry), so one definition serves the CPU and CUDA kernels.
#pragma once

#ifdef __CUDACC__
#define TORCH_LOWBIT_HD __host__ __device__
#else
#define TORCH_LOWBIT_HD
#endif
