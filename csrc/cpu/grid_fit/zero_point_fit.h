// The zero-point grid search of method="mse" (torch_lowbit/quantize/grids.py: fit_mse, the
// reference) on the CPU: raw pointers, no torch headers.
#pragma once
#include <cstdint>

#include "cpu/isa/isa.h"

namespace torch_lowbit {
namespace cpu {

// For each of `rows` groups w[r * G .. r * G + G): the grid scale * (c - zp), c in
// [0, 2^bits), zp an integer, with the lowest squared error among `points` clippings of
// [min, max] (ratios 1 .. 0.5), each followed by `refits` least-squares refits of the step.
// Threads over groups.
void zero_point_fit(const float* w, int64_t rows, int64_t G, int bits, int points, int refits,
                    float* scale, float* zp);
// Groups [r0, r1) on one thread: baseline x86-64 and AVX2 + FMA builds of the same search.
void zero_point_fit_rows(const float* w, int64_t r0, int64_t r1, int64_t G, int bits, int points,
                         int refits, float* scale, float* zp);
void zero_point_fit_rows_avx2(const float* w, int64_t r0, int64_t r1, int64_t G, int bits,
                              int points, int refits, float* scale, float* zp);

}  // namespace cpu
}  // namespace torch_lowbit
