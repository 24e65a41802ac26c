// GPTQ's sequential column loop over one block (torch_lowbit/quantize/gptq.py: gptq_codes; the
// reference is torch_lowbit.reference.gptq_block) on the CPU: raw pointers, no torch headers.
#pragma once
#include <cstdint>

namespace torch_lowbit {
namespace cpu {

// For each row n of w [N, B] (the block's columns): for i = 0 .. B-1, code c of the level of
// levels[n, group_of[i], :] ([N, ng, L]) nearest w[n, i] (the first on ties), e = (w[n, i] - level)
// / hinv[i, i], then w[n, j] -= e * hinv[i, j] for j > i. Writes codes [N, B] and e into
// err [N, B]; w is not modified. Threads over rows (rows never interact inside a block).
void gptq_block(const float* w, const float* hinv, const float* levels, const int64_t* group_of,
                int64_t N, int64_t B, int64_t ng, int64_t L, int64_t* codes, float* err);

}  // namespace cpu
}  // namespace torch_lowbit
